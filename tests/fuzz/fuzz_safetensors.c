/* libFuzzer target: the safetensors header parser (lp_st_open_mem). When the input
 * parses, every small tensor is read through lp_tensor_to_f32 so that ASan sees any
 * view that reaches outside the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include "loupe/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_st_file *f = NULL;
    lp_error err = {0};
    if (lp_st_open_mem(data, size, "fuzz.safetensors", &f, &err) != 0)
        return 0;
    for (int i = 0; i < lp_st_count(f); i++) {
        lp_tensor t = lp_st_tensor(f, i);
        int64_t n = lp_tensor_nelem(&t);
        if (n > 0 && n <= (1 << 16)) {
            float *dst = malloc((size_t)n * sizeof *dst);
            if (dst) {
                lp_tensor_to_f32(&t, dst);
                free(dst);
            }
        }
        (void)lp_st_find(f, lp_st_name(f, i));
    }
    (void)lp_st_metadata(f, "format");
    lp_st_close(f);
    return 0;
}
