# SPDX-License-Identifier: Apache-2.0
"""The Python SDK against a real silod with the namespace provider (tests/sdk/run.sh).

TAP on stdout. Every sandbox is deleted by the test that made it (and run.sh
deletes any left over). Environment from run.sh: SILO_SOCKET, SILO_TEST_TCP,
SILO_TEST_TOKEN, SILO_TEST_RO_TOKEN.
"""
import asyncio
import io
import os
import sys
import tarfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import silo  # noqa: E402
import tap  # noqa: E402

NS = dict(provider="namespace", vcpus=1, memory_mb=128)


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = silo.Client()
        cls.sb = cls.c.create(name="py-" + cls.__name__.lower(), **NS)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sb.delete(grace=0)
        finally:
            cls.c.close()


class MinimalShape(unittest.TestCase):
    def test_as_written_in_the_issue(self):
        c = silo.Client(); sb = c.create(provider="namespace"); r = sb.exec(["sh", "-c", "echo hi"])
        self.assertEqual(r.stdout, "hi\n"); self.assertEqual(r.exit_code, 0)
        sb.files.write("/tmp/x", b"1"); self.assertEqual(sb.files.read("/tmp/x"), b"1"); sb.delete()
        self.assertEqual(sb.state, "terminated")
        with self.assertRaises(silo.VmNotFound):
            c.list()  # the list no longer has it ...
            c.get(sb.id).exec("true")  # ... and nothing runs in it
        c.close()

    def test_context_manager_deletes(self):
        with silo.Client() as c:
            with c.create(**NS) as sb:
                sid = sb.id
                self.assertIn(sid, [s.id for s in c.list()])
            self.assertNotIn(sid, [s.id for s in c.list()])
            self.assertEqual(c.get(sid).state, "terminated")

    def test_create_from_hac_toml(self):
        toml = '[vm]\nname = "py-toml"\nprovider = "namespace"\n[resources]\nvcpus = 1\nmemory_mb = 160\n' \
               '[sandbox.env]\nGREETING = "from-toml"\n'
        with silo.Client() as c, c.create(toml) as sb:
            self.assertEqual(sb.name, "py-toml")
            self.assertEqual(sb.info["memory_mb"], 160)
            self.assertEqual(sb.exec("echo $GREETING").stdout, "from-toml\n")


class Errors(Base):
    def test_unknown_sandbox_is_vm_not_found(self):
        with self.assertRaises(silo.VmNotFound) as cm:
            self.c.get("sb-doesnotexist")
        e = cm.exception
        self.assertEqual((e.code, e.number, e.status), ("VM_NOT_FOUND", 5, 404))
        self.assertIsInstance(e, silo.SiloError)
        self.assertIs(silo.SandboxNotFound, silo.VmNotFound)

    def test_missing_file_is_file_not_found_with_sandbox_and_errno(self):
        with self.assertRaises(silo.FileNotFound) as cm:
            self.sb.files.read("/no/such/file")
        e = cm.exception
        self.assertEqual((e.code, e.sandbox_id, e.errno), ("FILE_NOT_FOUND", self.sb.id, 2))
        self.assertIsInstance(e, FileNotFoundError)  # also the builtin

    def test_bad_field_is_invalid_config_naming_it(self):
        with self.assertRaises(silo.InvalidConfig) as cm:
            self.c.create(provider="namespace", vcpus=0)
        self.assertIn("vcpus", cm.exception.message)

    def test_every_code_has_a_class(self):
        codes = ["INVALID_CONFIG", "RESOURCE_EXCEEDED", "MAX_VMS_EXCEEDED", "BOOT_TIMEOUT", "VM_NOT_FOUND",
                 "VSOCK_DISCONNECTED", "POLICY_DENIED", "SECURITY_VIOLATION", "CHECKSUM_MISMATCH",
                 "PLUGIN_UNVERIFIED", "CLEANUP_FAILED", "REMOTE_UNREACHABLE", "PROVIDER_UNAVAILABLE", "IO_ERROR",
                 "TIMEOUT", "PROTOCOL", "UNAUTHORIZED", "CONFLICT", "NOT_SUPPORTED", "INTERNAL", "NOT_FOUND",
                 "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "FILE_NOT_FOUND",
                 "PROCESS_NOT_FOUND"]
        for i, code in enumerate(codes, 1):
            cls = silo.BY_CODE[code]
            self.assertEqual((cls.code, cls.number), (code, i))
        e = silo.error_from_body(418, b'{"error": {"code": "SOMETHING_NEW", "message": "m"}}')
        self.assertEqual((type(e), e.code, e.number), (silo.SiloError, "SOMETHING_NEW", 0))
        e = silo.error_from_body(502, b"<html>")
        self.assertEqual(type(e), silo.ProtocolError)

    def test_scoped_token_is_policy_denied_and_no_token_unauthorized(self):
        tcp = os.environ["SILO_TEST_TCP"]
        with silo.Client(host=tcp, token=os.environ["SILO_TEST_RO_TOKEN"]) as ro:
            self.assertIn(self.sb.id, [s.id for s in ro.list()])
            with self.assertRaises(silo.PolicyDenied) as cm:
                ro.get(self.sb.id).exec("true")
            self.assertEqual(cm.exception.status, 403)
            with self.assertRaises(silo.PolicyDenied):
                ro.create(**NS)
        with silo.Client(host=tcp, token="wrong") as bad, self.assertRaises(silo.Unauthorized):
            bad.list()

    def test_connection_rules(self):
        with silo.Client(host=os.environ["SILO_TEST_TCP"], token=os.environ["SILO_TEST_TOKEN"]) as c:
            self.assertEqual(c.get(self.sb.id).exec("echo tcp").stdout, "tcp\n")
        with self.assertRaises(silo.InvalidConfig):
            silo.Client(host="ftp://x")
        # TLS files (SILO_CA and friends) only with https://, a certificate only with its key
        with self.assertRaisesRegex(silo.InvalidConfig, "https://"):
            silo.Client(host=os.environ["SILO_TEST_TCP"], ca="/etc/ssl/ca.pem")
        with self.assertRaisesRegex(silo.InvalidConfig, "both or neither"):
            silo.Client(host="https://127.0.0.1:1", cert="/c.pem")
        with self.assertRaisesRegex(silo.InvalidConfig, "/nonexistent/ca.pem"):
            silo.Client(host="https://127.0.0.1:1", ca="/nonexistent/ca.pem")
        with self.assertRaises(silo.RemoteUnreachable) as cm:
            silo.Client(socket_path="/nonexistent/silod.sock").health()
        self.assertIn("/nonexistent/silod.sock", str(cm.exception))
        old = dict(os.environ)
        try:  # the CLI's rules: SILO_HOST + SILO_API_TOKEN win over the socket
            os.environ["SILO_HOST"] = os.environ["SILO_TEST_TCP"]
            os.environ["SILO_API_TOKEN"] = os.environ["SILO_TEST_TOKEN"]
            c = silo.Client()
            self.assertEqual(c.target, os.environ["SILO_TEST_TCP"])
            self.assertEqual(c.health()["status"], "ok")
            del os.environ["SILO_HOST"], os.environ["SILO_SOCKET"]
            os.environ["SILO_RUNTIME_DIR"] = "/tmp/elsewhere"
            self.assertEqual(silo.Client().target, "unix:/tmp/elsewhere/silod.sock")
        finally:
            os.environ.clear()
            os.environ.update(old)


class Exec(Base):
    def test_collected_result(self):
        r = self.sb.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
        self.assertEqual((r.stdout, r.stderr, r.exit_code, r.ok), ("out\n", "err\n", 3, False))
        with self.assertRaises(silo.CommandFailed) as cm:
            self.sb.exec("exit 4", check=True)
        self.assertEqual(cm.exception.result.exit_code, 4)

    def test_env_cwd_stdin_binary(self):
        r = self.sb.exec(["sh", "-c", "echo $A-$B; pwd; cat"], env={"A": "1", "B": "two"}, cwd="/tmp",
                         stdin=b"in\x00put")
        self.assertEqual(r.stdout_bytes, b"1-two\n/tmp\nin\x00put")

    def test_timeout_kills(self):
        t = time.monotonic()
        r = self.sb.exec(["sleep", "30"], timeout=0.5)
        self.assertTrue(r.timed_out)
        self.assertLess(time.monotonic() - t, 20)

    def test_streaming_arrives_before_the_end(self):
        t0 = time.monotonic()
        seen = []
        with self.sb.exec_stream("echo first; sleep 1.5; echo second >&2") as s:
            for ch in s:
                seen.append((ch.stream, ch.data, time.monotonic() - t0))
        self.assertEqual([(a, b) for a, b, _ in seen], [("stdout", b"first\n"), ("stderr", b"second\n")])
        self.assertLess(seen[0][2] + 1.0, seen[1][2], "the first chunk came when the command ended")
        self.assertEqual(s.result.exit_code, 0)

    def test_big_output_intact(self):
        r = self.sb.exec("head -c 3000000 /dev/zero | tr '\\0' a")
        self.assertEqual(len(r.stdout_bytes), 3000000)
        self.assertEqual(set(r.stdout_bytes), {ord("a")})

    def test_threads_share_one_client(self):
        out, errs = {}, []

        def run(i):
            try:
                for j in range(3):
                    out[(i, j)] = self.sb.exec(["echo", "%d-%d" % (i, j)]).stdout
            except Exception as e:  # noqa: BLE001
                errs.append(e)
        ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        self.assertEqual(errs, [])
        self.assertEqual(out, {(i, j): "%d-%d\n" % (i, j) for i in range(4) for j in range(3)})


class Processes(Base):
    def test_background_signal_wait(self):
        p = self.sb.spawn(["sleep", "60"], tag="sleeper")
        self.assertTrue(p.handle.startswith("p"))
        self.assertEqual(self.sb.process("sleeper").handle, p.handle)
        self.assertIn(p.handle, [x.handle for x in self.sb.procs()])
        p.signal("TERM")
        r = p.wait(timeout=10)
        self.assertEqual(r.signal, 15)
        p.kill()
        with self.assertRaises(silo.ProcessNotFound):
            self.sb.process(p.handle)

    def test_stdin_and_output(self):
        p = self.sb.spawn(["sh", "-c", "read a; echo got:$a; cat"], stdin_open=True)
        p.write("hello\n")
        p.write("rest", eof=True)
        with p.output() as s:
            res = s.wait()
        self.assertEqual((res.stdout, res.exit_code), ("got:hello\nrest", 0))

    def test_pty_session_resize(self):
        p = self.sb.pty(["sh", "-c", "stty size; read x; stty size; test -t 0 && echo tty"], rows=30, cols=100)
        with p.output() as s:
            buf = b""
            it = iter(s)
            while b"30 100" not in buf:
                buf += next(it).data
            p.resize(40, 120)
            p.write("\n")
            for ch in it:
                buf += ch.data
        self.assertIn(b"40 120", buf)
        self.assertIn(b"tty", buf)
        self.assertEqual(s.result.exit_code, 0)


class FilesTest(Base):
    def test_write_read_stat_list_move_remove(self):
        f = self.sb.files
        f.mkdir("/tmp/d/e", parents=True)
        self.assertEqual(f.write("/tmp/d/e/a.txt", "alpha", mode=0o600), 5)
        self.assertEqual(f.read_text("/tmp/d/e/a.txt"), "alpha")
        st = f.stat("/tmp/d/e/a.txt")
        self.assertEqual((st["type"], st["size"], st["mode"]), ("file", 5, "0600"))
        f.write("/tmp/d/big", io.BytesIO(os.urandom(1 << 20)))
        self.assertEqual(f.stat("/tmp/d/big")["size"], 1 << 20)
        names = sorted(e["name"] for e in f.list("/tmp/d", depth=2))
        self.assertEqual(names, ["big", "e", "e/a.txt"])
        f.move("/tmp/d/e/a.txt", "/tmp/d/b.txt")
        self.assertFalse(f.exists("/tmp/d/e/a.txt"))
        self.assertTrue(f.exists("/tmp/d/b.txt"))
        with self.assertRaises(silo.Conflict):
            f.mkdir("/tmp/d")
        with self.assertRaises(silo.IoError):
            f.remove("/tmp/d")
        f.remove("/tmp/d", recursive=True)
        self.assertFalse(f.exists("/tmp/d"))

    def test_tar_out_and_in(self):
        f = self.sb.files
        f.mkdir("/tmp/t/sub", parents=True)
        f.write("/tmp/t/sub/x", b"x" * 1000)
        data = f.tar_out("/tmp/t")
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            self.assertIn("t/sub/x", t.getnames())
        self.assertEqual(b"".join(f.tar_out_stream("/tmp/t")), data)
        self.assertGreater(f.tar_in("/tmp/copy", data), 0)
        self.assertEqual(f.read("/tmp/copy/t/sub/x"), b"x" * 1000)
        evil = io.BytesIO()
        with tarfile.open(fileobj=evil, mode="w") as t:
            ti = tarfile.TarInfo("../escape")
            ti.size = 1
            t.addfile(ti, io.BytesIO(b"!"))
        with self.assertRaises(silo.InvalidConfig):
            f.tar_in("/tmp/copy", evil.getvalue())


class Lifecycle(unittest.TestCase):
    def test_list_filters_pause_resume_snapshot_fork_restore_events(self):
        with silo.Client() as c, c.create(name="py-life", metadata={"team": "sdk"}, **NS) as sb:
            self.assertEqual([s.id for s in c.list(name="py-life")], [sb.id])
            self.assertEqual([s.id for s in c.list(metadata={"team": "sdk"})], [sb.id])
            self.assertEqual(c.list(name="py-nothing-like-it"), [])
            self.assertEqual(sb.pause().state, "paused")
            with self.assertRaises(silo.Conflict):
                sb.exec("true")
            self.assertEqual(sb.resume().state, "running")
            sb.files.write("/root/mark", b"before")
            try:
                snap = sb.snapshot(tags=["py-sdk-snap"])
            except silo.NotSupported as e:
                self.skipTest("snapshots: %s" % e)
            self.assertEqual(c.snapshot("py-sdk-snap")["id"], snap["id"])
            forks = sb.fork(1)
            try:
                self.assertEqual(forks[0].files.read("/root/mark"), b"before")
            finally:
                [x.delete(grace=0) for x in forks]
            r = c.restore(snap["id"])
            try:
                self.assertEqual(r.files.read("/root/mark"), b"before")
                self.assertEqual(r.exec("cat /root/mark").stdout, "before")
            finally:
                r.delete(grace=0)
            c.delete_snapshot(snap["id"])

    def test_events_stream(self):
        with silo.Client() as c:
            got = []
            it = c.events(types=["ready", "terminated"], limit=2)
            t = threading.Thread(target=lambda: got.extend(it))
            t.start()
            time.sleep(0.5)
            with c.create(**NS) as sb:
                sid = sb.id
            t.join(60)
            self.assertEqual([(e["type"], e.get("sandbox_id")) for e in got], [("ready", sid), ("terminated", sid)])

    def test_deployments(self):
        spec = '[vm]\nname = "x"\nprovider = "namespace"\n[resources]\nvcpus = 1\nmemory_mb = 160\n'
        with silo.Client() as c:
            d = c.deploy("py-agent", spec=spec, restart="never")
            try:
                self.assertEqual(d["name"], "py-agent")
                self.assertIn("py-agent", [x["name"] for x in c.deployments()])
                sid = c.deployment("py-agent")["sandbox_id"]
                self.assertEqual(c.get(sid).exec("echo deployed").stdout, "deployed\n")
                with self.assertRaises(silo.Conflict):
                    c.deploy("py-agent", spec=spec)
            finally:
                c.undeploy("py-agent", grace=0)
            self.assertNotIn("py-agent", [x["name"] for x in c.deployments()])


class Async(unittest.TestCase):
    def test_asyncio_surface(self):
        async def main():
            async with silo.AsyncClient() as c:
                async with await c.create(**NS) as sb:
                    r = await sb.exec(["sh", "-c", "echo hi"])
                    self.assertEqual((r.stdout, r.exit_code), ("hi\n", 0))
                    await sb.files.write("/tmp/a", b"1")
                    self.assertEqual(await sb.files.read("/tmp/a"), b"1")
                    chunks = []
                    s = await sb.exec_stream("for i in 1 2 3; do echo $i; done")
                    async for ch in s:
                        chunks.append(ch.data)
                    self.assertEqual(b"".join(chunks), b"1\n2\n3\n")
                    self.assertEqual(s.result.exit_code, 0)
                    # several at once on one loop
                    rs = await asyncio.gather(*[sb.exec(["echo", str(i)]) for i in range(4)])
                    self.assertEqual([x.stdout for x in rs], ["%d\n" % i for i in range(4)])
                    # cancelling a stream kills its command
                    p = await sb.spawn(["sleep", "60"])
                    self.assertEqual((await p.refresh())["state"], "running")
                    await p.kill()
                    with self.assertRaises(silo.FileNotFound):
                        await sb.files.read("/nope")
                    sid = sb.id
                self.assertEqual((await c.get(sid)).state, "terminated")
        asyncio.run(main())


if __name__ == "__main__":
    tap.main()
