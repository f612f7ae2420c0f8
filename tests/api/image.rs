//! The container image: `minispod healthcheck` against real servers, and the Dockerfile and
//! .dockerignore read as the image builder reads them (no Docker engine runs in CI).
use std::{process::Output, time::Duration};

use crate::support::TestApp;

/// Runs `minispod healthcheck` with `env`, from a directory without a `.env`; a probe that
/// outlives `deadline` fails the test instead of hanging it.
async fn healthcheck(env: &[(&str, &str)], deadline: Duration) -> (Output, Duration) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minispod"));
    cmd.arg("healthcheck").current_dir(std::env::temp_dir()).kill_on_drop(true);
    for var in ["MINISPOD_LISTEN", "DATABASE_URL", "JWT_SECRET", "MINISPOD_ENV", "HTTP_PROXY", "http_proxy"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(deadline, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("healthcheck still running after {deadline:?}"))
        .unwrap();
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn healthcheck_exits_0_against_a_running_gateway() {
    let app = TestApp::spawn().await;
    let addr = app.url.strip_prefix("http://").unwrap().to_string();
    let (out, _) = healthcheck(&[("MINISPOD_LISTEN", &addr)], Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // In the container the probe has the server's environment. Settings it never uses must not
    // fail it, even ones the server would refuse, and a proxy must not carry a loopback probe.
    let hostile = [
        ("MINISPOD_LISTEN", addr.as_str()),
        ("DATABASE_URL", "mysql://not-supported"),
        ("JWT_SECRET", "short"),
        ("MINISPOD_ENV", "production"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    let (out, _) = healthcheck(&hostile, Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // The image listens on 0.0.0.0: the probe goes to the loopback.
    let port = addr.rsplit_once(':').unwrap().1;
    let (out, _) = healthcheck(&[("MINISPOD_LISTEN", &format!("0.0.0.0:{port}"))], Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test]
async fn healthcheck_exits_1_against_a_closed_port() {
    // A port that was just free: bind, read it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, _) = healthcheck(&[("MINISPOD_LISTEN", &format!("127.0.0.1:{port}"))], Duration::from_secs(20)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("/healthz") && err.lines().count() == 1, "one line naming the probe: {err}");
}

#[tokio::test]
async fn healthcheck_exits_1_when_healthz_is_not_200() {
    use axum::{Router, http::StatusCode, routing::get};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/healthz", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }));
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let (out, _) = healthcheck(&[("MINISPOD_LISTEN", &addr.to_string())], Duration::from_secs(20)).await;
    server.abort();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("503"), "{}", stderr(&out));
}

#[tokio::test]
async fn healthcheck_gives_up_after_2_seconds_on_a_server_that_never_answers() {
    // The kernel completes the connection into the backlog, but nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (out, took) = healthcheck(&[("MINISPOD_LISTEN", &addr)], Duration::from_secs(15)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "took {took:?}");
    drop(silent);
}

#[tokio::test]
async fn healthcheck_rejects_an_invalid_listen_address_in_one_line() {
    let (out, _) = healthcheck(&[("MINISPOD_LISTEN", "not-an-address")], Duration::from_secs(20)).await;
    // 1, not the usual 2: Docker reserves exit code 2 in health checks.
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("MINISPOD_LISTEN") && err.lines().count() == 1, "{err}");
}

// --- The Dockerfile, read as instructions -------------------------------------------------------

/// One instruction: keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        // Comments (and parser directives) are whole lines, also inside a continuation.
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, args) = pending.trim().split_once(char::is_whitespace).unwrap_or((pending.trim(), ""));
                out.push(Instruction { keyword: keyword.to_ascii_uppercase(), args: args.trim().to_string() });
                pending.clear();
            }
        }
    }
    assert!(pending.is_empty(), "Dockerfile ends inside a continuation");
    out
}

fn read(file: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The instructions of the last stage: the image that ships.
fn final_stage(all: &[Instruction]) -> &[Instruction] {
    let from = all.iter().rposition(|i| i.keyword == "FROM").expect("a FROM");
    &all[from..]
}

/// Leading `--flag=value` options of an instruction, then the rest.
fn strip_flags(args: &str) -> &str {
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        rest = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r).trim_start();
    }
    rest
}

fn dockerignore_patterns() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        // `**/x`, `/x`, `x/` and `x` all exclude the top-level x.
        .map(|l| l.trim_start_matches("**/").trim_start_matches("./").trim_start_matches('/').trim_end_matches('/'))
        .map(str::to_string)
        .collect()
}

#[test]
fn image_health_check_runs_minispod_healthcheck() {
    let all = instructions(&read("Dockerfile"));
    let checks: Vec<_> = final_stage(&all).iter().filter(|i| i.keyword == "HEALTHCHECK").collect();
    assert_eq!(checks.len(), 1, "one HEALTHCHECK in the final stage");
    let cmd = strip_flags(&checks[0].args);
    let argv = cmd.strip_prefix("CMD").map(str::trim).unwrap_or_else(|| panic!("HEALTHCHECK CMD …, got {cmd}"));
    // Exec form: no shell, whose /bin/sh is dash without /dev/tcp, and the slim image has no curl.
    let argv: Vec<String> =
        serde_json::from_str(argv).unwrap_or_else(|_| panic!("HEALTHCHECK must use the exec form, got {argv}"));
    assert_eq!(argv.len(), 2, "{argv:?}");
    assert!(argv[0] == "minispod" || argv[0].ends_with("/minispod"), "{argv:?}");
    assert_eq!(argv[1], "healthcheck");
}

#[test]
fn image_runs_as_a_non_root_user() {
    let all = instructions(&read("Dockerfile"));
    let user = final_stage(&all).iter().rev().find(|i| i.keyword == "USER").expect("the final stage sets USER");
    let name = user.args.split(':').next().unwrap_or_default().trim();
    assert!(!name.is_empty() && name != "root" && name != "0", "USER {}", user.args);
}

#[test]
fn dockerignore_keeps_build_output_git_and_secrets_out_of_the_context() {
    let patterns = dockerignore_patterns();
    for needed in ["target", ".git", ".env"] {
        let excluded =
            patterns.iter().any(|p| p == needed || p.strip_suffix('*').is_some_and(|s| needed.starts_with(s)));
        assert!(excluded, ".dockerignore must exclude {needed}: {patterns:?}");
    }
    assert!(!patterns.iter().any(|p| p.starts_with('!') && p.contains("target")), "target re-included: {patterns:?}");
}

#[test]
fn dockerignore_keeps_what_the_build_copies() {
    // Every COPY from the context must survive .dockerignore (an excluded source fails the build).
    let all = instructions(&read("Dockerfile"));
    let patterns = dockerignore_patterns();
    for copy in all.iter().filter(|i| i.keyword == "COPY" && !i.args.contains("--from")) {
        let words: Vec<&str> = strip_flags(&copy.args).split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            let src = src.trim_start_matches("./").trim_end_matches('/');
            if src == "." {
                continue;
            }
            assert!(!patterns.iter().any(|p| p == src), "COPY {src} but .dockerignore excludes it");
        }
    }
}

#[test]
fn image_version_label_defaults_to_the_crate_version() {
    let all = instructions(&read("Dockerfile"));
    let arg = final_stage(&all)
        .iter()
        .find(|i| i.keyword == "ARG" && i.args.starts_with("VERSION="))
        .expect("ARG VERSION=… in the final stage");
    assert_eq!(arg.args, format!("VERSION={}", env!("CARGO_PKG_VERSION")), "bump the image version with Cargo.toml");
    assert!(
        final_stage(&all)
            .iter()
            .any(|i| i.keyword == "LABEL" && i.args.contains("org.opencontainers.image.version=\"${VERSION}\""))
    );
}
