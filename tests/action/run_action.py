"""Runs a composite action's steps as a GitHub runner would, offline: each `run:` step
through `bash --noprofile --norc -eo pipefail FILE` with its `env:` evaluated, in the
current directory, with GITHUB_ACTION_PATH, GITHUB_OUTPUT and the runner's variables
set; `uses:` steps (actions/cache, upload-sarif) are not run but recorded with their
`with:` evaluated. A step that fails stops the run, as on a runner, whose status is
then this script's.

    python3 run_action.py ACTION_DIR RECORD.json [NAME=VALUE ...]

NAME=VALUE sets an input. The context comes from the environment (GITHUB_WORKSPACE,
GITHUB_BASE_REF, GITHUB_SHA, GITHUB_REPOSITORY, GITHUB_SERVER_URL, GITHUB_STEP_SUMMARY,
RUNNER_TEMP, RUNNER_OS). Expressions are the forms the action uses: `inputs.NAME`,
`steps.ID.outputs.NAME`, `steps.ID.outcome`, `runner.temp`, `runner.os`, `github.sha`;
`if:` conditions are recorded, and a `run:` step with one is refused (this runner
does not evaluate them).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def main():
    action_dir, record_path, *assignments = sys.argv[1:]
    with open(os.path.join(action_dir, "action.yml"), encoding="utf-8") as f:
        action = yaml.safe_load(f)
    assert action["runs"]["using"] == "composite", "not a composite action"
    inputs = {name: str(spec.get("default", "")) for name, spec in action.get("inputs", {}).items()}
    for assignment in assignments:
        name, value = assignment.split("=", 1)
        if name not in inputs:
            sys.exit(f"no input {name!r} in action.yml")
        inputs[name] = value
    steps = {}
    context = {
        "runner.temp": os.environ["RUNNER_TEMP"],
        "runner.os": os.environ.get("RUNNER_OS", "Linux"),
        "github.sha": os.environ["GITHUB_SHA"],
    }

    def value(expression):
        if expression in context:
            return context[expression]
        m = re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", expression)
        if m:
            return inputs[m.group(1)]
        m = re.fullmatch(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", expression)
        if m:
            return steps.get(m.group(1), {}).get("outputs", {}).get(m.group(2), "")
        m = re.fullmatch(r"steps\.([A-Za-z0-9_-]+)\.outcome", expression)
        if m:
            return steps.get(m.group(1), {}).get("outcome", "")
        raise SystemExit(f"unsupported expression: {expression}")

    def evaluate(text):
        return EXPRESSION.sub(lambda m: value(m.group(1)), str(text))

    record = {"inputs": inputs, "steps": [], "status": 0}
    for step in action["runs"]["steps"]:
        name = step.get("name", step.get("id", "?"))
        if "uses" in step:
            record["steps"].append(
                {
                    "name": name,
                    "uses": step["uses"],
                    "if": step.get("if"),
                    "with": {k: evaluate(v) for k, v in step.get("with", {}).items()},
                }
            )
            continue
        if "if" in step:
            raise SystemExit(f"step {name!r}: a run step with `if:` is not supported here")
        if step.get("shell") != "bash":
            raise SystemExit(f"step {name!r}: shell is {step.get('shell')!r}, expected bash")
        env = dict(os.environ)
        env.update({k: evaluate(v) for k, v in step.get("env", {}).items()})
        env["GITHUB_ACTION_PATH"] = os.path.abspath(action_dir)
        with tempfile.TemporaryDirectory() as tmp:
            output = os.path.join(tmp, "output")
            open(output, "w").close()
            env["GITHUB_OUTPUT"] = output
            script = os.path.join(tmp, "step.sh")
            with open(script, "w", encoding="utf-8") as f:
                f.write(evaluate(step["run"]))
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script], env=env)
            outputs = {}
            with open(output, encoding="utf-8") as f:
                for line in f.read().splitlines():
                    if line:
                        k, v = line.split("=", 1)
                        outputs[k] = v
        outcome = "success" if done.returncode == 0 else "failure"
        steps[step.get("id", name)] = {"outputs": outputs, "outcome": outcome}
        record["steps"].append(
            {"name": name, "status": done.returncode, "outputs": outputs}
        )
        if done.returncode != 0:
            record["status"] = done.returncode
            break
    with open(record_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    sys.exit(record["status"])


if __name__ == "__main__":
    main()
