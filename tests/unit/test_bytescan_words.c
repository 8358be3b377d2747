/*
 * test_bytescan_words.c - test_bytescan.c again, on the 8-byte-word
 * fallback that CPUs without SSE2 use.
 */
#define RC_TEST_NO_SSE2 1
#include "test_bytescan.c"
