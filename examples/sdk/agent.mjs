// An agent-style loop with the TypeScript SDK: write a script into a sandbox,
// run it streaming its output, read the result file. Run by the suite
// (tests/sdk/test_typescript.sh) against a real silod.
import { Client, withSandbox } from "../../sdk/typescript/dist/esm/index.js";

const client = new Client();
const code = await withSandbox(client, { provider: "namespace", memory_mb: 128 }, async (sb) => {
  await sb.files.write("/tmp/task.sh", "for i in 1 2 3; do echo step $i; done; echo '{\"steps\": 3}' > /tmp/result.json\n");
  const run = await sb.execStream(["sh", "/tmp/task.sh"], { timeoutMs: 60000 });
  for await (const chunk of run) process.stdout.write(`[${chunk.stream}] ${chunk.data}`);
  const { exitCode } = await run.result;
  console.log("exit", exitCode);
  console.log("result", (await sb.files.readText("/tmp/result.json")).trim());
  return exitCode;
});
client.close();
process.exit(code);
