#!/bin/sh
# What the Lambda image's virtual environment carries that a CPU Lambda never uses, removed after the last
# `pip install` (Dockerfile). Each cut is named; bench/image_size.py applies them one by one to a copy of the
# image's environment and prints what each saved, then imports the Lambda module and parses a photo from it.
#
#   sh scripts/prune_venv.sh VENV CUT...      # apply the named cuts, in order
#   sh scripts/prune_venv.sh --list           # the cuts, in the Dockerfile's order
#
# Cuts (sizes: docs/deployment.md, "The image"):
#   torch-headers    C++ headers and CMake files (for building extensions against torch)
#   torch-tests      torch's C++ test binaries, protoc and its test-only libraries (torch_shm_manager stays:
#                    torch.multiprocessing starts it)
#   strip-torch      the static symbol tables of libtorch_cpu/libtorch_python (`strip --strip-unneeded`: what
#                    the dynamic linker and torch's backtraces use, .dynsym, stays); needs binutils
#   package-tests    every package's own `tests` folders
#   type-stubs       .pyi files (read by type checkers, never by the interpreter)
#   pip              pip itself (nothing is installed into the image after this)
#   botocore-models  AWS API models of services the functions never call: kept are those the code builds
#                    clients for (BOTOCORE_SERVICES; tests/test_deploy.py checks the list against the code), X-Ray's
#                    (the tracer's sampling client, built at import) and the credential chain's (sts, sso,
#                    sso-oidc). Lambda image only: the [local] extra's S3/SQS emulation reads other models.
set -eu

CUTS="torch-headers torch-tests strip-torch package-tests type-stubs pip botocore-models"
BOTOCORE_SERVICES="s3 sqs stepfunctions xray sts sso sso-oidc"

if [ "${1:-}" = "--list" ]; then
  echo "$CUTS"
  exit 0
fi
venv=$1
shift
site=$(echo "$venv"/lib/python3*/site-packages)
[ -d "$site/torch" ] || { echo "prune_venv: no torch in $site" >&2; exit 2; }

for cut in "$@"; do
  case $cut in
    torch-headers)
      rm -rf "$site/torch/include" "$site/torch/share/cmake" ;;
    torch-tests)
      rm -rf "$site/torch/test"
      find "$site/torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} +
      rm -f "$site/torch/lib/libtorchbind_test.so" "$site/torch/lib/libjitbackend_test.so" \
            "$site/torch/lib/libbackend_with_compiler.so" "$site/torch/lib/libaoti_custom_ops.so" ;;
    strip-torch)
      strip --strip-unneeded "$site/torch/lib/libtorch_cpu.so" "$site/torch/lib/libtorch_python.so" ;;
    package-tests)
      find "$site" -depth -type d -name tests -exec rm -rf {} + ;;
    type-stubs)
      find "$site" -type f -name '*.pyi' -delete ;;
    pip)
      rm -rf "$site"/pip "$site"/pip-*.dist-info "$venv"/bin/pip "$venv"/bin/pip3* ;;
    botocore-models)
      for d in "$site"/botocore/data/*/; do
        name=$(basename "$d")
        case " $BOTOCORE_SERVICES " in
          *" $name "*) ;;
          *) rm -rf "$d" ;;
        esac
      done ;;
    *)
      echo "prune_venv: unknown cut '$cut' (cuts: $CUTS)" >&2
      exit 2 ;;
  esac
done
