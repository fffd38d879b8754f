// The crate against a real silod (tests/sdk/test_rust.sh starts it: SILO_SOCKET,
// SILO_TEST_TCP, SILO_TEST_TOKEN, SILO_TEST_RO_TOKEN), namespace provider.
use silo::{Client, ClientOptions, Code, Exec, Stream};
use std::time::Duration;

fn client() -> Client {
    Client::new().expect("connect to the test silod")
}

// no longer among the live sandboxes (silod keeps the record of a terminated one)
fn gone(c: &Client, id: &str) -> bool {
    !c.list(None).unwrap().contains(id)
}

#[test]
fn create_exec_files_and_drop_deletes() {
    let c = client();
    let id;
    {
        let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
        id = sb.id().to_string();
        let r = sb.exec(&Exec::new(["sh", "-c", "echo hi; echo err >&2; exit 3"])).unwrap();
        assert_eq!(r.stdout, b"hi\n");
        assert_eq!(r.stderr, b"err\n");
        assert_eq!(r.status.code, 3);
        assert!(!r.status.success());
        let r = sb.exec(&Exec::new(["sh", "-c", "echo $K $(pwd); cat"]).env("K", "v").cwd("/tmp").stdin("in")).unwrap();
        assert_eq!(r.stdout_str(), "v /tmp\nin");
        let r = sb.exec(&Exec::new(["sleep", "30"]).timeout(Duration::from_millis(300))).unwrap();
        assert!(r.status.timed_out);
        sb.files().write("/tmp/x", b"1\0binary").unwrap();
        assert_eq!(sb.files().read("/tmp/x").unwrap(), b"1\0binary");
        sb.files().mkdir("/tmp/d/e", true).unwrap();
        assert!(sb.files().stat("/tmp/d/e").unwrap().contains("dir"));
        assert!(sb.files().list("/tmp", 1).unwrap().contains("\"x\""));
        sb.files().remove("/tmp/d", true).unwrap();
        let e = sb.files().read("/tmp/d").unwrap_err();
        assert_eq!(e.code, Code::FileNotFound);
        assert_eq!(e.sandbox_id, id);
        assert!(c.list(None).unwrap().contains(&id));
    }
    assert!(gone(&c, &id), "Drop deleted the sandbox");
}

#[test]
fn streaming_stop_and_panics() {
    let c = client();
    let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
    let mut seen = Vec::new();
    let st = sb.exec_stream(&Exec::new(["sh", "-c", "echo a; echo b >&2; echo c"]), |s, d| {
        seen.push((s, d.to_vec()));
        true
    }).unwrap().unwrap();
    assert_eq!(st.code, 0);
    let out: Vec<u8> = seen.iter().filter(|(s, _)| *s == Stream::Stdout).flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(out, b"a\nc\n");
    assert!(seen.iter().any(|(s, d)| *s == Stream::Stderr && d == b"b\n"));
    // stopping: the command is killed, no status
    let st = sb.exec_stream(&Exec::new(["sh", "-c", "while :; do echo y; sleep 0.05; done"]), |_, _| false).unwrap();
    assert!(st.is_none());
    // a panic in the callback stops the stream and comes back to the caller
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = sb.exec_stream(&Exec::new(["sh", "-c", "echo z"]), |_, _| panic!("in callback"));
    }));
    assert!(p.is_err());
    assert_eq!(sb.exec(&Exec::new(["true"])).unwrap().status.code, 0, "the client works after the panic");
    sb.delete().unwrap();
}

#[test]
fn background_process_signal_write_wait() {
    let c = client();
    let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
    let p = sb.spawn(&Exec::new(["cat"]).tag("cat").stdin_open()).unwrap();
    p.write(b"hello\n", true).unwrap();
    let st = p.wait(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(st.code, 0);
    let s = sb.spawn(&Exec::new(["sleep", "60"])).unwrap();
    s.signal("KILL").unwrap();
    let st = s.wait(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(st.signal, 9);
    s.remove().unwrap();
    let e = sb.process("p999").wait(Some(Duration::from_secs(1))).unwrap_err();
    assert_eq!(e.code, Code::ProcessNotFound);
    let t = sb.spawn(&Exec::new(["sh", "-c", "echo pty; tty"]).pty(24, 80)).unwrap();
    let mut out = Vec::new();
    let st = t.output(|_, d| { out.extend_from_slice(d); true }).unwrap().unwrap();
    assert_eq!(st.code, 0);
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("pty") && out.contains("/dev/pts/"), "{out}");
}

#[test]
fn snapshot_restore_fork_pause_tar() {
    let c = client();
    let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
    sb.files().write("/root/state", b"42").unwrap();
    sb.files().mkdir("/tmp/t", false).unwrap();
    sb.files().write("/tmp/t/f", b"in tar").unwrap();
    sb.pause().unwrap();
    assert!(sb.info().unwrap().contains("paused"));
    sb.resume().unwrap();
    let mut tar = Vec::new();
    sb.files().tar_out("/tmp/t", |d| { tar.extend_from_slice(d); true }).unwrap();
    assert!(tar.len() >= 1024 && tar.len() % 512 == 0);
    sb.files().mkdir("/tmp/copy", false).unwrap();
    sb.files().tar_in("/tmp/copy", &tar).unwrap();
    assert_eq!(sb.files().read("/tmp/copy/t/f").unwrap(), b"in tar");
    let snap = sb.snapshot(None).unwrap();
    let r = c.restore(&snap).unwrap();
    assert_ne!(r.id(), sb.id());
    assert_eq!(r.files().read("/root/state").unwrap(), b"42");
    let _ = c.request("DELETE", &format!("/v1/snapshots/{snap}"), None, b"");
    let forks = sb.fork(2).unwrap();
    assert_eq!(forks.len(), 2);
    assert_eq!(forks[1].files().read("/root/state").unwrap(), b"42");
    let id = forks[0].id().to_string();
    assert!(c.list(None).unwrap().contains(&id));
    drop(forks);
    assert!(gone(&c, &id));
}

#[test]
fn errors_carry_codes_and_tokens() {
    let c = client();
    let e = c.attach("sb-does-not-exist").err().unwrap();
    assert_eq!(e.code, Code::VmNotFound);
    assert_eq!(e.code.name(), "VM_NOT_FOUND");
    assert!(e.to_string().starts_with("VM_NOT_FOUND: "));
    let e = c.create(r#"{"provider": "namespace", "vcpus": 0}"#).err().unwrap();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.message.contains("vcpus"), "{}", e.message);
    assert_eq!(c.create("[sandbox\nprovider=").err().unwrap().code, Code::InvalidConfig);
    let tcp = std::env::var("SILO_TEST_TCP").unwrap();
    let ro = Client::with_options(&ClientOptions {
        host: Some(tcp.clone()), token: std::env::var("SILO_TEST_RO_TOKEN").ok(), ..Default::default()
    }).unwrap();
    assert_eq!(ro.target(), tcp);
    ro.list(None).unwrap();
    assert_eq!(ro.create(r#"{"provider": "namespace"}"#).err().unwrap().code, Code::PolicyDenied);
    let bad = Client::with_options(&ClientOptions { host: Some(tcp.clone()), token: Some("wrong".into()), ..Default::default() }).unwrap();
    assert_eq!(bad.list(None).unwrap_err().code, Code::Unauthorized);
    let nul = Client::with_options(&ClientOptions { token: Some("a\0b".into()), ..Default::default() });
    assert_eq!(nul.err().unwrap().code, Code::InvalidConfig);
    let tls = Client::with_options(&ClientOptions { host: Some(tcp), ca: Some("/ca.pem".into()), ..Default::default() });
    assert_eq!(tls.err().unwrap().code, Code::InvalidConfig);
    let none = Client::with_options(&ClientOptions { socket: Some("/nonexistent/silod.sock".into()), ..Default::default() }).unwrap();
    let e = none.list(None).unwrap_err();
    assert_eq!(e.code, Code::RemoteUnreachable);
    assert!(e.message.contains("/nonexistent/silod.sock"));
    for n in 1..=26 {
        let code = Code::from_number(n);
        assert_ne!(code, Code::Unknown);
        assert_eq!(code as i32, n);
        assert_ne!(code.name(), "UNKNOWN");
    }
    assert_eq!(Code::from_number(999), Code::Unknown);
}

#[test]
fn events_and_threads() {
    let c = std::sync::Arc::new(client());
    let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
    let id = sb.keep();
    let handles: Vec<_> = (0..4).map(|i| {
        let (c, id) = (c.clone(), id.clone());
        std::thread::spawn(move || {
            let sb = c.attach(&id).unwrap();
            let r = sb.exec(&Exec::new(["sh", "-c", &format!("echo {i}")])).unwrap();
            sb.keep();
            r.stdout_str()
        })
    }).collect();
    let mut outs: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    outs.sort();
    assert_eq!(outs, ["0\n", "1\n", "2\n", "3\n"]);
    c.attach(&id).unwrap().delete().unwrap();
}

#[test]
fn events_stream() {
    // the stream is live: start it, then create and delete a sandbox
    let c = std::sync::Arc::new(client());
    let want: std::sync::Arc<std::sync::Mutex<String>> = Default::default();
    let (c2, want2) = (c.clone(), want.clone());
    let t = std::thread::spawn(move || {
        let mut got = Vec::new();
        c2.events(Some("types=ready,terminated&limit=100"), |ev| {
            got.push(ev.to_string());
            let id = want2.lock().unwrap().clone();
            !(ev.contains("terminated") && !id.is_empty() && ev.contains(&id))
        }).map(|_| got)
    });
    std::thread::sleep(Duration::from_millis(500));
    let sb = c.create(r#"{"provider": "namespace", "memory_mb": 128}"#).unwrap();
    let id = sb.id().to_string();
    *want.lock().unwrap() = id.clone();
    sb.delete().unwrap();
    let got = t.join().unwrap().unwrap();
    let mine: Vec<&String> = got.iter().filter(|e| e.contains(&id)).collect();
    assert_eq!(mine.len(), 2, "{got:?}");
    assert!(mine[0].contains("\"ready\"") && mine[1].contains("\"terminated\""), "{mine:?}");
}
