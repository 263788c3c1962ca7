#!/usr/bin/env python3
"""More than one machine (docs/benchmarks.md): 64 concurrent downloads of a
64 MiB image through one replica, through two replicas, and with
--store-redirect (the S3 server sends the bytes), against nginx serving the
same file; and ingest through each backend (default, SQLite + S3,
PostgreSQL + S3). The engines are real: a throwaway PostgreSQL cluster
(Debian's postgresql, unix socket only) and s3s-fs (target/tools/, from
scripts/tools.sh), both on this machine. Prints a table and writes
OUT/scale.json.

    scripts/bench_scale.py --bin target/release --out target/bench
"""

import argparse
import hashlib
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from benchlib import Run, free_port, sha256_file

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--s3s-fs", default=os.path.join(os.path.dirname(__file__), "../target/tools/bin/s3s-fs"))
args = ap.parse_args()

QUICK = os.environ.get("BENCH_QUICK") == "1"
MIB = 1 << 20
SIZE = (8 if QUICK else 64) * MIB
CLIENTS = 16 if QUICK else 64
RUNS = 2 if QUICK else 3
BIN = os.path.abspath(args.bin)
OUT = os.path.abspath(args.out)
os.makedirs(OUT, exist_ok=True)
work = tempfile.mkdtemp(prefix="bench-scale.", dir="/tmp")
os.chmod(work, 0o711)  # PostgreSQL runs as its own user below it
run_ = Run("bench-scale", work)
procs, log, die, cleanup = run_.procs, run_.log, run_.die, run_.cleanup
rows = []


def spawn(cmd, env=None, **kw):
    p = subprocess.Popen(cmd, env=env, start_new_session=True, **kw)
    procs.append(p)
    return p


def pg_bin(name):
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=int, reverse=True)
    return f"/usr/lib/postgresql/{versions[0]}/bin/{name}"


# --- engines ------------------------------------------------------------------
def start_postgres():
    d = os.path.join(work, "pg")
    os.makedirs(d)
    demote = None
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)

        def demote():
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
    subprocess.run([pg_bin("initdb"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", f"{d}/data"],
                   check=True, capture_output=True, preexec_fn=demote)
    spawn([pg_bin("postgres"), "-D", f"{d}/data", "-c", "listen_addresses=", "-c", f"unix_socket_directories={d}",
           "-c", "max_connections=200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=demote)
    for _ in range(600):
        if subprocess.run([pg_bin("pg_isready"), "-q", "-h", d]).returncode == 0:
            break
        time.sleep(0.1)
    else:
        die("PostgreSQL did not start")
    return d


def create_db(pgdir, name):
    subprocess.run([pg_bin("psql"), "-h", pgdir, "-U", "postgres", "-q", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return f"postgres://postgres@{pgdir.replace('/', '%2F')}/{name}"


def start_s3():
    root = os.path.join(work, "s3")
    os.makedirs(root)
    p = spawn([args.s3s_fs, "--host", "127.0.0.1", "--port", "0", "--access-key", "bench", "--secret-key",
               "bench-secret", root], env=dict(os.environ, RUST_LOG="info", NO_COLOR="1"),
              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if "server is running at " in line:
            endpoint = line.split("server is running at ")[1].split()[0]
            break
    else:
        die("s3s-fs did not start")
    # Drain its log.
    import threading
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return root, endpoint


pgdir = start_postgres()
s3root, S3 = start_s3()
S3ENV = {"AWS_ENDPOINT_URL": S3, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench",
         "AWS_SECRET_ACCESS_KEY": "bench-secret"}
n_backends = 0


def backend(kind):
    """Environment of a new repository on `kind`: default, s3, postgres-s3."""
    global n_backends
    n_backends += 1
    env = dict(os.environ, RUST_LOG="warn")
    if kind != "default":
        bucket = f"bucket{n_backends}"
        os.makedirs(os.path.join(s3root, bucket))
        env.update(S3ENV, UKREPO_STORE_URL=f"s3://{bucket}/repo")
    if kind == "postgres-s3":
        env["UKREPO_DATABASE_URL"] = create_db(pgdir, f"bench{n_backends}")
    return env


def replica(env, flags=(), data=None):
    e = dict(env, UKREPO_DATA_DIR=data or tempfile.mkdtemp(dir=work))
    p = spawn([f"{BIN}/unikernel-repo", "serve", "--listen", "127.0.0.1:0", "--max-upload-size", "4G", *flags],
              env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        die(f"unikernel-repo said {line!r}")
    return line.split()[-1]


def add_user(env, data=None):
    e = dict(env, UKREPO_DATA_DIR=data or tempfile.mkdtemp(dir=work))
    subprocess.run([f"{BIN}/unikernel-repo", "user", "add", "ci", "--unrestricted", "--create-jobs"], input="pw\n",
                   text=True, env=e, check=True, capture_output=True)


def upload(url, image):
    e = dict(os.environ, UKREPO_URL=url, UKREPO_USER="ci", UKREPO_PASSWORD="pw")
    r = subprocess.run([f"{BIN}/upload", "--job", "bench", "--platform", "bench", "--json", image], env=e,
                       capture_output=True, text=True)
    if r.returncode != 0:
        die(f"upload: {r.stderr}")
    return json.loads(r.stdout)


image = os.path.join(work, "image.bin")


def new_image():
    with open(image, "wb") as f:
        f.write(os.urandom(SIZE))
    return sha256_file(image)


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def fmt(v):
    return f"{v['median']:.2f} [{v['min']:.2f}..{v['max']:.2f}]" if isinstance(v, dict) else f"{v}"


def row(what, ours, ref, unit, ratio, note=""):
    rows.append({"what": what, "ours": ours, "reference": ref, "unit": unit, "ratio": ratio, "note": note})
    log(f"{what}: {fmt(ours)} vs {fmt(ref)} {unit}, ratio {ratio:.2f}")


def downloads(urls, sha, follow=False):
    """CLIENTS curl downloads at once, spread over `urls`; seconds for all."""
    cmds = [["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"] + (["-L"] if follow else [])
            + [urls[i % len(urls)]] for i in range(CLIENTS)]
    start = time.monotonic()
    ps = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate()[0] for p in ps]
    took = time.monotonic() - start
    bad = [o for o in outs if o.split() != ["200", str(SIZE)]]
    if bad:
        die(f"downloads answered {bad[:3]}")
    # One download verified end to end.
    check = subprocess.run(["curl", "-sSL"] + (["-L"] if follow else []) + [urls[0]], capture_output=True)
    if hashlib.sha256(check.stdout).hexdigest() != sha:
        die(f"{urls[0]}: wrong bytes")
    return took


def timed_downloads(urls, sha, follow=False):
    downloads(urls, sha, follow)  # warm-up
    return stats([downloads(urls, sha, follow) for _ in range(RUNS)])


# --- 1. ingest through each backend ---------------------------------------------
ingest = {}
for kind in ["default", "s3", "postgres-s3"]:
    env = backend(kind)
    # The default keeps its database in the data dir: the user goes there.
    data = tempfile.mkdtemp(dir=work)
    add_user(env, data)
    url = replica(env, data=data)
    times = []
    for _ in range(RUNS):
        new_image()
        t = time.monotonic()
        upload(url, image)
        times.append(time.monotonic() - t)
    ingest[kind] = stats(times)
for kind in ["s3", "postgres-s3"]:
    row(f"ingest {SIZE // MIB} MiB with `upload`: {kind} vs default", ingest[kind], ingest["default"], "s",
        ingest["default"]["median"] / ingest[kind]["median"], "default: SQLite + files, fsynced")

# --- 2. 64 concurrent downloads ------------------------------------------------
env = backend("postgres-s3")
add_user(env)
a, b = replica(env), replica(env)
redirect = replica(env, ["--store-redirect"])
sha = new_image()
build = upload(a, image)
path = f"/job/bench/build/{build['uuid']}/f/{build['main_binary_file']['filepath']}"

ngx = os.path.join(work, "nginx")
os.makedirs(os.path.join(ngx, "static"))
os.makedirs(os.path.join(ngx, "logs"))
shutil.copy(image, os.path.join(ngx, "static", "image.bin"))
port = free_port()
open(os.path.join(ngx, "nginx.conf"), "w").write(f"""
user root;
worker_processes 2;
daemon off;
pid {ngx}/nginx.pid;
error_log {ngx}/logs/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on;
  server {{ listen 127.0.0.1:{port}; location /static/ {{ root {ngx}; }} }} }}
""")
spawn(["nginx", "-c", os.path.join(ngx, "nginx.conf"), "-p", ngx], stderr=subprocess.DEVNULL)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port)).close()
        break
    except OSError:
        time.sleep(0.05)
else:
    die("nginx did not start")

ref = timed_downloads([f"http://127.0.0.1:{port}/static/image.bin"], sha)
one = timed_downloads([a + path], sha)
two = timed_downloads([a + path, b + path], sha)
red = timed_downloads([redirect + path], sha, follow=True)
total = CLIENTS * SIZE / MIB
for what, v in [("one replica (PostgreSQL + S3, bytes through the replica)", one),
                ("two replicas (clients split between them)", two),
                ("--store-redirect (307, then the S3 server sends the bytes)", red)]:
    row(f"{CLIENTS} concurrent downloads of {SIZE // MIB} MiB: {what} vs nginx static", v, ref, "s",
        ref["median"] / v["median"], f"{total / v['median']:.0f} MiB/s vs nginx {total / ref['median']:.0f} MiB/s")

# --- report ---------------------------------------------------------------------
machine = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "image_mib": SIZE // MIB,
           "clients": CLIENTS, "runs": RUNS}
json.dump({"machine": machine, "rows": rows}, open(os.path.join(OUT, "scale.json"), "w"), indent=2)
print(f"\n{machine}\n")
print("| what | ours | reference | unit | ratio (>1: we do better) |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['what']} | {fmt(r['ours'])} | {fmt(r['reference'])} | {r['unit']} | {r['ratio']:.2f} ({r['note']}) |")
cleanup()
