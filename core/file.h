/*
 * file.h - reading a small file whole: certificates, CA bundles, API key
 * files, and the config file SIGHUP compares with the running one.
 */
#ifndef RC_FILE_H
#define RC_FILE_H

#include "core/error.h"

#include <stddef.h>

/* Reads the whole file at path into a NUL-terminated string (the caller's,
 * to free), at most max bytes; NULL with err set ("cannot open PATH: why")
 * when it cannot. */
char *rc_read_file(const char *path, size_t max, rc_error *err);

#endif
