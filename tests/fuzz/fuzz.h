/* What the fuzz targets share: the libFuzzer entry point each defines, the seed inputs it starts
 * from, and the index they query (built once into a temporary file). */
#ifndef ALOOP_FUZZ_H
#define ALOOP_FUZZ_H
#include <stddef.h>
#include <stdint.h>

#include "charfinder/charfinder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The target's seeds, NULL-terminated (each a C string). */
extern const char *const fuzz_seeds[];

/* The index (built on first use from the configured Unicode data); aborts if it cannot be had. */
const cf_index *fuzz_index(void);
#endif
