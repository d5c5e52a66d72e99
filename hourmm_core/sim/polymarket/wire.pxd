# The simulator engine's wire strings in C: ids and decimal strings (see wire.pyx).

cdef extern from "_sha256.h":
    void hmm_sha256_hex(const unsigned char *msg, size_t length, char *out) nogil

cdef str _id_hex(bytes head, long long seq, double draw)
