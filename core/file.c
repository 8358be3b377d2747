/*
 * file.c - reading a small file whole (see file.h).
 */
#include "core/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rc_read_file(const char *path, size_t max, rc_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_error_set(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(max + 1);
    size_t n = data ? fread(data, 1, max + 1, f) : 0;
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!data || bad || n > max) {
        rc_error_set(err, "cannot read %s: %s", path,
                     !data ? "out of memory"
                     : bad ? "read error"
                           : "file too large");
        free(data);
        return NULL;
    }
    data[n] = '\0';
    return data;
}
