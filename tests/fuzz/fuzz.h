/* What the fuzz targets share: the libFuzzer entry point each defines and the index they query.
 * Their seed inputs are files in tests/fuzz/corpus/TARGET/, for make check's runs and libFuzzer's
 * alike. */
#ifndef ALOOP_FUZZ_H
#define ALOOP_FUZZ_H
#include <stddef.h>
#include <stdint.h>

#include "charfinder/charfinder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The index (built on first use from the configured Unicode data); aborts if it cannot be had. */
const cf_index *fuzz_index(void);
#endif
