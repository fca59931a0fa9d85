//! Build script of the `runnel` binary: records the commit it is built from and the build date
//! for `runnel --version` (`RUNNEL_COMMIT`, `RUNNEL_BUILD_DATE`). Outside a git checkout the
//! commit is `unknown`; `SOURCE_DATE_EPOCH` (reproducible builds) sets the date when given.

use std::process::Command;

/// The trimmed standard output of a command that succeeded.
fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn git(args: &[&str]) -> Option<String> {
    run("git", args)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Built again when HEAD moves (a commit, a checkout), not on every file change.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let (Some(common), Some(head)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        println!("cargo:rerun-if-changed={common}/{head}");
        println!("cargo:rerun-if-changed={common}/packed-refs");
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let date = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => run("date", &["-u", "-d", &format!("@{epoch}"), "+%Y-%m-%d"]),
        Err(_) => run("date", &["-u", "+%Y-%m-%d"]),
    }
    .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RUNNEL_COMMIT={commit}");
    println!("cargo:rustc-env=RUNNEL_BUILD_DATE={date}");
}
