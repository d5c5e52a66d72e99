# The simulator's order / trade ids in C (see ids.pyx).

cdef extern from "_sha256.h":
    void hmm_sha256_hex(const unsigned char *msg, size_t length, char *out) nogil

cdef str _id_hex(bytes head, long long seq, double draw)
