// An agent-style program with the Rust crate (sdk/rust): write a script into a
// sandbox, run it streaming its output, read the result file. Run by the suite
// (tests/sdk/test_rust.sh: `cargo run --example agent`) against a real silod.
use silo::{Client, Exec, Stream};
use std::io::Write;

fn main() -> Result<(), silo::Error> {
    let client = Client::new()?;
    let sb = client.create(r#"{"provider": "namespace", "memory_mb": 128}"#)?; // deleted when dropped
    let script = "for i in 1 2 3; do echo step $i; done; echo '{\"steps\": 3}' > /tmp/result.json\n";
    sb.files().write("/tmp/task.sh", script.as_bytes())?;
    let status = sb.exec_stream(&Exec::new(["sh", "/tmp/task.sh"]), |stream, data| {
        let name = if stream == Stream::Stdout { "stdout" } else { "stderr" };
        print!("[{name}] {}", String::from_utf8_lossy(data));
        std::io::stdout().flush().is_ok()
    })?;
    let result = sb.files().read("/tmp/result.json")?;
    println!("exit {}", status.map_or(-1, |s| s.code));
    print!("result {}", String::from_utf8_lossy(&result));
    Ok(())
}
