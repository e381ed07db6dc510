"""Print the README's install or test command (the fenced block after <!-- ci:install/test -->),
so that CI runs exactly what a newcomer reads."""

import re
import sys
from pathlib import Path

which = sys.argv[1]
text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
m = re.search(rf"<!-- ci:{which} -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
if not m:
    sys.exit(f"README.md has no <!-- ci:{which} --> code block")
print(m.group(1).strip())
