#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, with every warning an error.
# Needs the docs extra: pip install -c constraints.txt -e ".[docs]"
set -euo pipefail
cd "$(dirname "$0")"
python -m sphinx -W --keep-going -b html -d _build/doctrees . _build/html "$@"
echo "Built docs/_build/html/index.html"
