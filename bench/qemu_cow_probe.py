#!/usr/bin/env python3
# Can QEMU (7.2 in Debian 12) restore a template with copy-on-write RAM that
# its jailed, unprivileged process cannot write? (docs/snapshots.md "Limits").
# Plain QEMU, no Silo code: a source VM (microvm, TCG) boots KERNEL + INITRD
# with a shell on its serial port and guest RAM in a file mapped share=on,
# writes /before ("before-15", computed by the guest's shell), stops and
# migrates with x-ignore-shared (device state only).
# The RAM file is copied into a memfd sealed against writes (F_SEAL_WRITE,
# GROW, SHRINK). N destination VMs, each as uid 65534, map that memfd
# share=off (MAP_PRIVATE) through /proc/self/fd/N, take the device state with
# -incoming, resume, and must answer on their shell and still see /before.
# Alternately, as many restores take the whole stream (RAM included) into
# anonymous RAM, as Silo's templates do today: the peer in the same run.
# Prints one JSON document: state bytes, per restore the incoming time and
# RSS/PSS/shared of its QEMU, and whether the memfd is unchanged afterwards.
#
#   bench/qemu_cow_probe.py KERNEL INITRD [N]      (root; KERNEL/INITRD readable by uid 65534)
import fcntl, hashlib, json, os, shutil, socket, subprocess, sys, tempfile, time

F_ADD_SEALS, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1033, 2, 4, 8
MIB = 1 << 20
kernel, initrd = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 3
d = tempfile.mkdtemp(prefix='silo-cow-')
os.chmod(d, 0o1777)   # the demoted QEMUs create their sockets here
base = ['qemu-system-x86_64', '-accel', 'tcg', '-m', '256M',
        '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 panic=-1 rdinit=/bin/sh',
        '-nodefaults', '-no-reboot', '-display', 'none']


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    for _ in range(200):
        try:
            s.connect(path)
            return s
        except OSError:
            time.sleep(0.05)
    raise SystemExit('no socket ' + path)


def qmp(path):
    f = connect(path).makefile('rw')
    f.readline()

    def call(cmd, **args):
        f.write(json.dumps({'execute': cmd, 'arguments': args}) + '\n')
        f.flush()
        while True:
            r = json.loads(f.readline())
            if 'return' in r or 'error' in r:
                return r
    call('qmp_capabilities')
    return call


def ask(s, cmd, want, timeout=60):
    s.sendall(cmd.encode())
    s.settimeout(0.5)
    buf, end = b'', time.time() + timeout
    while time.time() < end and want.encode() not in buf:
        try:
            buf += s.recv(65536)
        except socket.timeout:
            pass
    return want.encode() in buf


def migrated(call):
    for _ in range(2000):
        st = call('query-migrate')['return'].get('status')
        if st in ('completed', 'failed'):
            return st
        time.sleep(0.005)
    return 'timeout'


def vm(name, backend, extra, **kw):
    mem = ['-machine', 'microvm,memory-backend=m,acpi=off', '-object', 'memory-backend-file,id=m,size=256M,' + backend] \
        if backend else ['-machine', 'microvm,acpi=off']   # None: anonymous RAM, as Silo's qemu provider
    p = subprocess.Popen(base + mem + ['-serial', 'unix:%s/%s.ser,server=on,wait=off' % (d, name),
                                 '-qmp', 'unix:%s/%s.qmp,server=on,wait=off' % (d, name)] + extra, **kw)
    return p, qmp('%s/%s.qmp' % (d, name))


def demote():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


out = {'qemu': subprocess.run(['qemu-system-x86_64', '--version'], capture_output=True, text=True).stdout.split('\n')[0]}
src = None
try:
    ram = d + '/ram'
    with open(ram, 'wb') as f:
        f.truncate(256 * MIB)
    # two identical source runs: the stream with RAM (today's templates), then RAM
    # in the shared file and the device state alone (x-ignore-shared)
    for name, backend, ignore in (('state-full', None, False), ('state', 'mem-path=%s,share=on' % ram, True)):
        src, call = vm('src-' + name, backend, [])
        ser = connect('%s/src-%s.ser' % (d, name))
        # the shell may not read yet what is sent while the guest boots: ask again
        out['source_shell_' + name] = any(ask(ser, '\necho A-$((6*7))\n', 'A-42', 2) for _ in range(60))
        out['source_wrote_' + name] = ask(ser, 'echo before-$((3*5)) > /before; echo W-$((2*3))\n', 'W-6')
        call('stop')
        if ignore:
            call('migrate-set-capabilities', capabilities=[{'capability': 'x-ignore-shared', 'state': True}])
        call('migrate', uri='exec:cat > %s/%s' % (d, name))
        out['save_' + name] = migrated(call)
        out[name + '_bytes'] = os.path.getsize('%s/%s' % (d, name))
        os.chmod('%s/%s' % (d, name), 0o444)
        call('quit')
        src.wait()
    fd = os.memfd_create('silo-template-ram', os.MFD_ALLOW_SEALING)
    with open(ram, 'rb') as f:
        os.write(fd, f.read())
    fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
    digest = hashlib.sha256(os.pread(fd, 256 * MIB, 0)).hexdigest()
    live, out['restores'] = [], []
    for k in range(2 * n):   # alternately: the stream into anonymous RAM, the sealed memfd
        cow = k % 2 == 1
        p, c = vm('dst%d' % k, 'mem-path=/proc/self/fd/%d,share=off' % fd if cow else None, ['-incoming', 'defer'],
                  pass_fds=[fd], preexec_fn=demote)
        if cow:
            c('migrate-set-capabilities', capabilities=[{'capability': 'x-ignore-shared', 'state': True}])
        t0 = time.time()
        c('migrate-incoming', uri='exec:cat %s/%s' % (d, 'state' if cow else 'state-full'))
        st = migrated(c)
        ms = (time.time() - t0) * 1000
        c('cont')
        ok = ask(connect('%s/dst%d.ser' % (d, k)), '\ncat /before\n', 'before-15')
        live.append((p, c))
        out['restores'].append({'ram': 'memfd, copy on write' if cow else 'anonymous (stream)', 'incoming': st, 'incoming_ms': round(ms, 1), 'answers_and_sees_before': ok})
    time.sleep(1)
    for (p, c), r in zip(live, out['restores']):
        m = {}
        for line in open('/proc/%d/smaps_rollup' % p.pid):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                m[parts[0].rstrip(':')] = int(parts[1])
        r.update(rss_mib=round(m['Rss'] / 1024, 1), pss_mib=round(m['Pss'] / 1024, 1),
                 shared_clean_mib=round(m['Shared_Clean'] / 1024, 1))
        c('quit')
        p.wait()
    out['memfd_unchanged'] = digest == hashlib.sha256(os.pread(fd, 256 * MIB, 0)).hexdigest()
    try:
        os.pwrite(fd, b'x', 0)
        out['memfd_write'] = 'allowed'
    except OSError as e:
        out['memfd_write'] = 'refused: ' + os.strerror(e.errno)
finally:
    if src and src.poll() is None:
        src.kill()
    shutil.rmtree(d, ignore_errors=True)
print(json.dumps(out))
