#!/usr/bin/env bash
# Downloads a supported model folder from the Hugging Face hub, checking every file against what
# the hub states for one revision (and against pins for openai/clip-vit-base-patch32):
#
#   scripts/download_model.sh [HUB_ID] [DIR]      e.g. scripts/download_model.sh timm/MobileCLIP2-S0-OpenCLIP
#
# See scripts/download_model.py for the details (`--help` lists the supported hub ids).
exec python3 "$(dirname "${BASH_SOURCE[0]}")/download_model.py" "$@"
