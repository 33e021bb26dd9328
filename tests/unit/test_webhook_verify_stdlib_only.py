"""The receiver-side verifier must import with the Python standard library alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    ALLOWED = set(sys.stdlib_module_names) | {"consumers", "__main__"}

    class BlockNonStdlib:
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top not in ALLOWED:
                raise ImportError(f"non-stdlib import blocked: {name}")
            return None

    sys.meta_path.insert(0, BlockNonStdlib())
    sys.path.insert(0, sys.argv[1])

    from consumers.webhooks.verify import Webhook, WebhookVerificationError

    try:
        Webhook(b"k" * 32).verify(b"{}", {})
    except WebhookVerificationError:
        pass
    loaded = {name.partition(".")[0] for name in sys.modules}
    outside = sorted(loaded - ALLOWED)
    print("outside:", outside)
    sys.exit(1 if outside else 0)
    """
)


def run_isolated(script: str) -> subprocess.CompletedProcess[str]:
    # -I: ignore PYTHON* variables and the user site; -S: no site-packages at all.
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(REPO_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_verifier_imports_and_runs_with_only_the_standard_library() -> None:
    result = run_isolated(SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "outside: []" in result.stdout


def test_import_blocker_really_blocks_third_party_modules() -> None:
    script = SCRIPT.replace(
        "from consumers.webhooks.verify import",
        "import httpx\nfrom consumers.webhooks.verify import",
    )
    result = run_isolated(script)
    assert result.returncode != 0
    assert "non-stdlib import blocked: httpx" in result.stderr
