"""Runs a composite action's steps as a GitHub runner would, offline: each step's
`if:` evaluated (`success()` when it has none); a `run:` step through
`bash --noprofile --norc -eo pipefail FILE` with its `env:` evaluated, in the current
directory, with GITHUB_ACTION_PATH, GITHUB_OUTPUT and the runner's variables set; a
`uses:` step (actions/cache, upload-sarif) not run but recorded with its `with:`
evaluated and whether it would run. After a failed step only steps whose condition
holds without success (`always()`, `!cancelled()`, `failure()`) run, as on a runner;
the first failed step's status is this script's.

    python3 run_action.py ACTION_DIR RECORD.json [NAME=VALUE ...]

NAME=VALUE sets an input. The context comes from the environment (GITHUB_WORKSPACE,
GITHUB_BASE_REF, GITHUB_SHA, GITHUB_REPOSITORY, GITHUB_SERVER_URL, GITHUB_STEP_SUMMARY,
GITHUB_EVENT_PATH, RUNNER_TEMP, RUNNER_OS, RUNNER_ARCH). Expressions are the forms the
action uses: `inputs.NAME`, `steps.ID.outputs.NAME`, `steps.ID.outcome`,
`runner.temp|os|arch`, `github.sha`, `github.event.PATH`; conditions are terms joined
by `&&`: a status function, `A == 'x'`, `A != 'x'`, `!A` or `A`. Anything else is
refused, so that the action cannot use what this runner would get wrong.
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
        "runner.arch": os.environ.get("RUNNER_ARCH", "X64"),
        "github.sha": os.environ["GITHUB_SHA"],
    }
    event = {}
    if os.environ.get("GITHUB_EVENT_PATH"):
        with open(os.environ["GITHUB_EVENT_PATH"], encoding="utf-8") as f:
            event = json.load(f)
    failed = False

    def value(expression):
        if expression in context:
            return context[expression]
        if expression.startswith("github.event."):
            node = event
            for part in expression[len("github.event."):].split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if node == {} or node is None:
                return ""
            if isinstance(node, bool):
                return "true" if node else "false"
            return str(node)
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

    def condition(text):
        """Whether a step runs: its `if:` (terms joined by &&) and the job's state."""
        if text is None:
            return not failed
        status_checked = False
        result = True
        for term in (t.strip() for t in str(text).split("&&")):
            if term in ("always()", "!cancelled()"):
                status_checked = True
            elif term == "success()":
                status_checked = True
                result = result and not failed
            elif term == "failure()":
                status_checked = True
                result = result and failed
            elif m := re.fullmatch(r"(\S+) (==|!=) '([^']*)'", term):
                equal = value(m.group(1)) == m.group(3)
                result = result and (equal if m.group(2) == "==" else not equal)
            elif m := re.fullmatch(r"!([A-Za-z0-9_.-]+)", term):
                result = result and value(m.group(1)) in ("", "false", "0")
            elif re.fullmatch(r"[A-Za-z0-9_.-]+", term):
                result = result and value(term) not in ("", "false", "0")
            else:
                raise SystemExit(f"unsupported condition: {term}")
        # A condition without a status function implies success().
        return result and (status_checked or not failed)

    record = {"inputs": inputs, "steps": [], "status": 0}
    for step in action["runs"]["steps"]:
        name = step.get("name", step.get("id", "?"))
        runs = condition(step.get("if"))
        if "uses" in step:
            record["steps"].append(
                {
                    "name": name,
                    "uses": step["uses"],
                    "if": step.get("if"),
                    "ran": runs,
                    "with": {k: evaluate(v) for k, v in step.get("with", {}).items()},
                }
            )
            continue
        if not runs:
            steps[step.get("id", name)] = {"outputs": {}, "outcome": "skipped"}
            record["steps"].append({"name": name, "ran": False})
            continue
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
            {"name": name, "ran": True, "status": done.returncode, "outputs": outputs}
        )
        if done.returncode != 0 and not failed:
            failed = True
            record["status"] = done.returncode
    with open(record_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
    sys.exit(record["status"])


if __name__ == "__main__":
    main()
