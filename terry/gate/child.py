"""The policy evaluator's child process: ``python -m terry.gate.child``.

Reads ``{"modules", "data", "input", "query"}`` as JSON on stdin and prints
``{"result": ...}``. It imports only json and regorus, so it starts fast (~25 ms), and the
parent can kill it at the timeout (regorus holds the GIL and cannot be interrupted).
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Evaluate one request from stdin; print ``{"result": ...}``. Runs in a child process."""
    import regorus

    request = json.load(sys.stdin)
    engine = regorus.Engine()
    # gate.rego (the decision and its defaults) first: regorus 0.9 evaluates the whole
    # package to the default decision with no reasons when another module of the package
    # was added before it (a module that sorts first, e.g. canary.rego); checked with
    # celine-regorus 0.9.1 (tests/unit/test_canary_waves.py).
    modules = request["modules"]
    for name in sorted(modules, key=lambda n: (n.rsplit("/", 1)[-1] != "gate.rego", n)):
        engine.add_policy(name, modules[name])
    # JSON strings, not Python objects: regorus' object conversion turns False into a truthy
    # value (checked with celine-regorus 0.9.1), which would flip `if input.flag` rules.
    for document in request["data"]:
        engine.add_data_json(json.dumps(document))
    engine.set_input_json(json.dumps(request["input"]))
    try:
        result = engine.eval_query(request["query"])
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("error:")), lines[0] if lines else "")
        where = next((ln for ln in lines if ln.startswith("-->")), "")
        print(
            f"rego {where.removeprefix('--> ')}: {detail.removeprefix('error: ')}", file=sys.stderr
        )
        return 1
    rows = result.get("result") or []
    value = rows[0]["expressions"][0]["value"] if rows else None
    json.dump(
        {"result": value}, sys.stdout, default=lambda v: sorted(v) if isinstance(v, set) else str(v)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
