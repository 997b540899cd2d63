{
  "targets": [
    {
      "target_name": "scaleot_blas",
      "sources": ["native/gemm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-lopenblas"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
