/* SHA-256 (FIPS 180-4) for the simulator's order and trade ids: wire.pyx hashes ~12,000 short
 * messages per simulated hour; a C one-shot avoids hashlib's per-call object and hexdigest costs.
 * Constants generated from their definition (cube / square roots of the first primes);
 * tests/unit/sim/polymarket/test_wire.py checks the digests against hashlib. */
#ifndef HOURMM_SHA256_H
#define HOURMM_SHA256_H
#include <stdint.h>
#include <string.h>

static const uint32_t HMM_SHA_K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u,
    0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u,
    0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu,
    0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u,
    0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u,
    0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u,
    0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u,
    0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u
};

#define HMM_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void hmm_sha256_block(uint32_t *h, const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = HMM_ROR(w[i - 15], 7) ^ HMM_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = HMM_ROR(w[i - 2], 17) ^ HMM_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
    for (i = 0; i < 64; i++) {
        t1 = hh + (HMM_ROR(e, 6) ^ HMM_ROR(e, 11) ^ HMM_ROR(e, 25)) + ((e & f) ^ (~e & g)) + HMM_SHA_K[i] + w[i];
        t2 = (HMM_ROR(a, 2) ^ HMM_ROR(a, 13) ^ HMM_ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* hex digest (64 lowercase chars, no terminator) of msg[0:len] into out */
static void hmm_sha256_hex(const unsigned char *msg, size_t len, char *out) {
    static const char HEX[] = "0123456789abcdef";
    uint32_t h[8] = { 0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u };
    unsigned char blk[64];
    size_t off = 0, rem;
    uint64_t bits = (uint64_t)len * 8u;
    int i;
    while (len - off >= 64) { hmm_sha256_block(h, msg + off); off += 64; }
    rem = len - off;
    memset(blk, 0, 64);
    memcpy(blk, msg + off, rem);
    blk[rem] = 0x80;
    if (rem >= 56) { hmm_sha256_block(h, blk); memset(blk, 0, 64); }
    for (i = 0; i < 8; i++) blk[63 - i] = (unsigned char)(bits >> (8 * i));
    hmm_sha256_block(h, blk);
    for (i = 0; i < 32; i++) {
        unsigned char byte = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = HEX[byte >> 4];
        out[2 * i + 1] = HEX[byte & 15];
    }
}
#endif
