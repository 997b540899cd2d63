/*
 * @scaleot/blas: cblas_sgemm over a WebAssembly heap (or any ArrayBuffer), without copies.
 *
 * One exported function does a batched, optionally transposed single-precision GEMM whose operands
 * live at byte offsets inside one ArrayBuffer (the tfjs wasm backend's memory):
 *
 *   sgemmBatched(heap, transA, transB, m, n, k, aOffset, bOffset, cOffset, batch, aIndex, bIndex)
 *
 * For i in [0, batch): C_i = op(A_{aIndex[i]}) op(B_{bIndex[i]}), where A_j starts at
 * aOffset + j*m*k*4 bytes (row-major [m, k], or [k, m] when transA), B_j at bOffset + j*k*n*4
 * ([k, n], or [n, k] when transB) and C_i at cOffset + i*m*n*4 ([m, n]). A null index means the
 * identity. Every slice is bounds-checked against the buffer before any work starts.
 *
 * The module is context-aware (NAPI_MODULE_INIT): it holds no per-isolate state and loads in worker
 * threads. OpenBLAS' thread count is process-wide (openblas_set_num_threads).
 */
#include <cblas.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), "SCALEOT_BLAS_NAPI", "N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_range(napi_env env, const char* message) {
  napi_throw_range_error(env, "SCALEOT_BLAS_RANGE", message);
  return NULL;
}

static bool get_int64(napi_env env, napi_value value, int64_t* out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return false;
  double d;
  if (napi_get_value_double(env, value, &d) != napi_ok) return false;
  if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

/* An Int32Array index (or null/undefined: identity). */
static bool get_index(napi_env env, napi_value value, const int32_t** data, size_t* length) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return false;
  if (type == napi_null || type == napi_undefined) {
    *data = NULL;
    *length = 0;
    return true;
  }
  bool is_typed;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  napi_typedarray_type array_type;
  void* raw;
  if (napi_get_typedarray_info(env, value, &array_type, length, &raw, NULL, NULL) != napi_ok) return false;
  if (array_type != napi_int32_array) return false;
  *data = (const int32_t*)raw;
  return true;
}

static napi_value sgemm_batched(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 12) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmBatched takes 12 arguments");
    return NULL;
  }

  void* heap = NULL;
  size_t heap_bytes = 0;
  bool is_buffer = false;
  CHECK(env, napi_is_arraybuffer(env, argv[0], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmBatched: heap must be an ArrayBuffer");
    return NULL;
  }
  CHECK(env, napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));

  bool trans_a, trans_b;
  CHECK(env, napi_get_value_bool(env, argv[1], &trans_a));
  CHECK(env, napi_get_value_bool(env, argv[2], &trans_b));
  int64_t m, n, k, a_off, b_off, c_off, batch;
  if (!get_int64(env, argv[3], &m) || !get_int64(env, argv[4], &n) || !get_int64(env, argv[5], &k) ||
      !get_int64(env, argv[6], &a_off) || !get_int64(env, argv[7], &b_off) || !get_int64(env, argv[8], &c_off) ||
      !get_int64(env, argv[9], &batch)) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmBatched: sizes and offsets must be non-negative integers");
    return NULL;
  }
  const int32_t *a_index, *b_index;
  size_t a_len, b_len;
  if (!get_index(env, argv[10], &a_index, &a_len) || !get_index(env, argv[11], &b_index, &b_len)) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmBatched: aIndex and bIndex must be Int32Array or null");
    return NULL;
  }
  if ((a_index != NULL && (int64_t)a_len != batch) || (b_index != NULL && (int64_t)b_len != batch)) {
    return throw_range(env, "sgemmBatched: index length differs from batch");
  }
  if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || batch > INT32_MAX) {
    return throw_range(env, "sgemmBatched: a dimension exceeds the BLAS int range");
  }
  if ((a_off | b_off | c_off) & 3) return throw_range(env, "sgemmBatched: offsets must be 4-byte aligned");
  if (batch == 0 || m == 0 || n == 0) return NULL;

  /* Bounds: the largest slice index used for each operand must end inside the buffer. */
  int64_t a_max = batch - 1, b_max = batch - 1;
  if (a_index != NULL) {
    a_max = 0;
    for (int64_t i = 0; i < batch; i++) {
      if (a_index[i] < 0) return throw_range(env, "sgemmBatched: negative aIndex entry");
      if (a_index[i] > a_max) a_max = a_index[i];
    }
  }
  if (b_index != NULL) {
    b_max = 0;
    for (int64_t i = 0; i < batch; i++) {
      if (b_index[i] < 0) return throw_range(env, "sgemmBatched: negative bIndex entry");
      if (b_index[i] > b_max) b_max = b_index[i];
    }
  }
  const int64_t a_size = m * k, b_size = k * n, c_size = m * n;
  const int64_t total = (int64_t)heap_bytes;
  if (a_off + (a_max + 1) * a_size * 4 > total || b_off + (b_max + 1) * b_size * 4 > total ||
      c_off + batch * c_size * 4 > total) {
    return throw_range(env, "sgemmBatched: an operand extends past the end of the heap");
  }

  float* a = (float*)((char*)heap + a_off);
  float* b = (float*)((char*)heap + b_off);
  float* c = (float*)((char*)heap + c_off);
  const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const int lda = trans_a ? (int)m : (int)k;
  const int ldb = trans_b ? (int)k : (int)n;

  if (k == 0) {
    memset(c, 0, (size_t)(batch * c_size) * sizeof(float));
    return NULL;
  }

  /* One B for every slice and the A slices in order, untransposed: fold the batch into the rows. */
  bool foldable = !trans_a && batch > 1;
  for (int64_t i = 0; i < batch && foldable; i++) {
    const int64_t ai = a_index != NULL ? a_index[i] : i;
    const int64_t bi = b_index != NULL ? b_index[i] : i;
    const int64_t b0 = b_index != NULL ? b_index[0] : 0;
    foldable = ai == i && bi == b0;
  }
  if (foldable && batch * m <= INT32_MAX) {
    const int64_t b0 = b_index != NULL ? b_index[0] : 0;
    cblas_sgemm(CblasRowMajor, ta, tb, (int)(batch * m), (int)n, (int)k, 1.0f, a, lda, b + b0 * b_size, ldb, 0.0f, c,
                (int)n);
    return NULL;
  }
  for (int64_t i = 0; i < batch; i++) {
    const int64_t ai = a_index != NULL ? a_index[i] : i;
    const int64_t bi = b_index != NULL ? b_index[i] : i;
    cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f, a + ai * a_size, lda, b + bi * b_size, ldb, 0.0f,
                c + i * c_size, (int)n);
  }
  return NULL;
}

/*
 * Causal attention products over [batch, t, *] slices, skipping what the causal mask makes zero. Rows
 * and keys are split into blocks of `block`; for query block i only keys of blocks 0..i exist.
 *   mode 0, scores:      C [t,t] = A [t,d] B[t,d]^T on the block lower triangle; the rest of C is 0
 *                        (masked later: the caller adds the causal bias; only the diagonal blocks need it).
 *   mode 1, lower-left:  C [t,d] = L [t,t] B [t,d] for L lower triangular (zero above the diagonal:
 *                        inside the diagonal blocks it is read; blocks wholly above it are not).
 *   mode 2, lower-left^T C [t,d] = L^T B for L [t,t] lower triangular (dv = p^T dy, dk = ds^T q).
 * Operand slices are contiguous: A_i at aOffset + i*size(A)*4 bytes, likewise B and C.
 *   sgemmCausal(heap, mode, batch, t, d, block, aOffset, bOffset, cOffset)
 */
static napi_value sgemm_causal(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 9) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmCausal takes 9 arguments");
    return NULL;
  }
  bool is_buffer = false;
  CHECK(env, napi_is_arraybuffer(env, argv[0], &is_buffer));
  if (!is_buffer) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmCausal: heap must be an ArrayBuffer");
    return NULL;
  }
  void* heap = NULL;
  size_t heap_bytes = 0;
  CHECK(env, napi_get_arraybuffer_info(env, argv[0], &heap, &heap_bytes));
  int64_t mode, batch, t, d, block, a_off, b_off, c_off;
  if (!get_int64(env, argv[1], &mode) || !get_int64(env, argv[2], &batch) || !get_int64(env, argv[3], &t) ||
      !get_int64(env, argv[4], &d) || !get_int64(env, argv[5], &block) || !get_int64(env, argv[6], &a_off) ||
      !get_int64(env, argv[7], &b_off) || !get_int64(env, argv[8], &c_off)) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "sgemmCausal: sizes and offsets must be non-negative integers");
    return NULL;
  }
  if (mode > 2) return throw_range(env, "sgemmCausal: mode must be 0 (scores), 1 (lower-left) or 2 (lower-left^T)");
  if (block < 1) return throw_range(env, "sgemmCausal: block must be positive");
  if (t > 65536 || d > INT32_MAX / 65536 || batch > INT32_MAX) return throw_range(env, "sgemmCausal: dimensions too large");
  if ((a_off | b_off | c_off) & 3) return throw_range(env, "sgemmCausal: offsets must be 4-byte aligned");
  const int64_t tt = t * t, td = t * d;
  const int64_t a_size = mode == 0 ? td : tt;
  const int64_t b_size = td;
  const int64_t c_size = mode == 0 ? tt : td;
  const int64_t total = (int64_t)heap_bytes;
  if (a_off + batch * a_size * 4 > total || b_off + batch * b_size * 4 > total || c_off + batch * c_size * 4 > total) {
    return throw_range(env, "sgemmCausal: an operand extends past the end of the heap");
  }
  if (batch == 0 || t == 0) return NULL;
  float* a = (float*)((char*)heap + a_off);
  float* b = (float*)((char*)heap + b_off);
  float* c = (float*)((char*)heap + c_off);
  const int T = (int)t, D = (int)d;
  for (int64_t i = 0; i < batch; i++) {
    float* ai = a + i * a_size;
    float* bi = b + i * b_size;
    float* ci = c + i * c_size;
    if (d == 0) {
      if (mode == 0) memset(ci, 0, (size_t)tt * sizeof(float));
      else memset(ci, 0, (size_t)td * sizeof(float));
      continue;
    }
    for (int r0 = 0; r0 < T; r0 += (int)block) {
      const int rows = (int)(r0 + block <= t ? block : t - r0);
      const int keys = r0 + rows; /* keys 0..keys-1 are visible to this block */
      if (mode == 0) {
        /* C[r0:r0+rows, 0:keys] = A[r0:r0+rows] B[0:keys]^T; zero the rest of those rows. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, D, 1.0f, ai + (int64_t)r0 * D, D, bi, D, 0.0f,
                    ci + (int64_t)r0 * T, T);
        if (keys < T) {
          for (int r = r0; r < r0 + rows; r++) memset(ci + (int64_t)r * T + keys, 0, (size_t)(T - keys) * sizeof(float));
        }
      } else if (mode == 1) {
        /* C[r0:r0+rows] = L[r0:r0+rows, 0:keys] B[0:keys] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, keys, 1.0f, ai + (int64_t)r0 * T, T, bi, D, 0.0f,
                    ci + (int64_t)r0 * D, D);
      } else {
        /* C[r0:r0+rows] (keys r0..) = L[r0:t, r0:r0+rows]^T B[r0:t]: only queries at or after the block see it. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, D, T - r0, 1.0f, ai + (int64_t)r0 * T + r0, T,
                    bi + (int64_t)r0 * D, D, 0.0f, ci + (int64_t)r0 * D, D);
      }
    }
  }
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t threads;
  if (argc != 1 || !get_int64(env, argv[0], &threads) || threads < 1 || threads > 4096) {
    napi_throw_type_error(env, "SCALEOT_BLAS_ARGS", "setThreads takes a positive integer");
    return NULL;
  }
  openblas_set_num_threads((int)threads);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(env, napi_create_int32(env, openblas_get_num_threads(), &result));
  return result;
}

static napi_value get_config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  const char* config = openblas_get_config();
  const char* core = openblas_get_corename();
  char text[512];
  snprintf(text, sizeof text, "%s; core %s; parallel %d", config != NULL ? config : "?", core != NULL ? core : "?",
           openblas_get_parallel());
  CHECK(env, napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"sgemmBatched", NULL, sgemm_batched, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmCausal", NULL, sgemm_causal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"config", NULL, get_config, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
