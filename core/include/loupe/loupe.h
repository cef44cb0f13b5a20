/* loupe — umbrella header for the core library. */
#ifndef LOUPE_H
#define LOUPE_H

#define LOUPE_VERSION_MAJOR 0
#define LOUPE_VERSION_MINOR 1
#define LOUPE_VERSION_PATCH 0
#define LOUPE_VERSION_STRING "0.1.0"

#include "loupe/cache.h"
#include "loupe/error.h"
#include "loupe/hook.h"
#include "loupe/model.h"
#include "loupe/npy.h"
#include "loupe/safetensors.h"
#include "loupe/tensor.h"
#include "loupe/tokenizer.h"

#endif
