// bench/sdk.sh's Rust client: N execs of `true` in an existing sandbox, one line of
// microseconds per exec. Usage: bench_exec SANDBOX_ID N
use silo::{Client, Exec};
use std::time::Instant;

fn main() -> Result<(), silo::Error> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let client = Client::new()?;
    let sb = client.attach(&args[1])?;
    let cmd = Exec::new(["true"]);
    for _ in 0..n {
        let t = Instant::now();
        let out = sb.exec(&cmd)?;
        let us = t.elapsed().as_micros();
        assert!(out.status.success(), "true failed");
        println!("{us}");
    }
    sb.keep(); // the bench owns the sandbox, not this process
    Ok(())
}
