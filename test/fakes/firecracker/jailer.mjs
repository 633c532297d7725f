#!/usr/bin/env node
// A stand-in Firecracker `jailer` for tests (../shared/reference/firecracker-docs/jailer.md). It
// validates argv the way the real one does, builds the jail, records the cgroup it would create,
// and prints the shell command that replaces it; testkit's fakeJailerBin() wrapper `exec`s that
// command, so the VMM keeps the jailer's pid like the real jailer without --new-pid-ns.
//
// Where it differs from the real jailer, on purpose:
// - cgroups: nothing under /sys/fs/cgroup is touched. It creates the empty directory
//   $FAKE_JAILER_CGROUP_ROOT/<parent_cgroup>/<id> (what the caller must rmdir) and appends
//   {id, cgroupDir, settings, ...} as a JSON line to $FAKE_JAILER_CGROUP_ROOT/records.jsonl.
//   FAKE_JAILER_CGROUP_ROOT is required: there is no default that could reach the host's tree.
// - chroot: no pivot_root (the fake firecracker is a node script, which cannot run inside an
//   empty chroot). The command cds into <chroot_dir> and sets FAKE_FC_CHROOT=<chroot_dir>; the fake
//   firecracker then resolves its socket and every path the API gives it under that root.
// - /dev/kvm and /dev/net/tun: mknod'ed inside the jail when it can (root, a filesystem that
//   allows device nodes); otherwise empty 0600 placeholder files. records.jsonl says which.
// - privileges: `setpriv` sets uid/gid (no supplementary groups, no capabilities) and execs the
//   exec file's copy in the jail; `prlimit` applies --resource-limit (no-file 2048 by default).
// - --new-pid-ns is refused (not modelled); --daemonize sends stdio to /dev/null like the real one.
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { basename, isAbsolute, join } from "node:path";

function die(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const VALUE_FLAGS = ["--id", "--exec-file", "--uid", "--gid", "--cgroup-version", "--cgroup", "--parent-cgroup", "--chroot-base-dir", "--netns", "--resource-limit"];
const REPEATABLE = ["--cgroup", "--resource-limit"];
const SWITCHES = ["--daemonize", "--new-pid-ns"];

function parse(argv) {
  const o = { cgroup: [], "resource-limit": [], extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      o.extra = argv.slice(i + 1);
      break;
    }
    if (SWITCHES.includes(a)) {
      o[a.slice(2)] = true;
      continue;
    }
    if (!VALUE_FLAGS.includes(a)) die(`Arguments parsing error: Found argument '${a}' which wasn't expected, or isn't valid in this context.`);
    const v = argv[++i];
    if (v === undefined || v.startsWith("--")) die(`Arguments parsing error: argument '${a}' requires a value.`);
    const key = a.slice(2);
    if (REPEATABLE.includes(a)) o[key].push(v);
    else if (o[key] !== undefined) die(`Arguments parsing error: argument '${a}' was provided more than once.`);
    else o[key] = v;
  }
  for (const req of ["id", "exec-file", "uid", "gid"]) if (o[req] === undefined) die(`Arguments parsing error: argument '--${req}' is required.`);
  return o;
}

const o = parse(process.argv.slice(2));
if (!/^[A-Za-z0-9-]{1,64}$/.test(o.id)) die(`Invalid instance ID: ${JSON.stringify(o.id)} (alphanumerics and '-', 1 to 64 characters)`);
for (const k of ["uid", "gid"]) if (!/^\d+$/.test(o[k])) die(`Invalid ${k}: ${JSON.stringify(o[k])} is not a number`);
const execFile = o["exec-file"];
if (!isAbsolute(execFile)) die(`Invalid exec file ${execFile}: the fake wants an absolute path`);
if (!existsSync(execFile) || !statSync(execFile).isFile()) die(`Failed to canonicalize path ${execFile}: No such file or directory`);
const execName = basename(execFile);
if (!execName.includes("firecracker")) die(`Invalid filename. The filename of \`--exec-file\` option must contain "firecracker": ${execName}`);
const cgroupVersion = o["cgroup-version"] ?? "1";
if (!["1", "2"].includes(cgroupVersion)) die(`Invalid cgroup version: ${cgroupVersion} (1 or 2)`);
const settings = {};
for (const c of o.cgroup) {
  const m = /^([a-z_]+\.[a-z_.]+)=(.+)$/.exec(c);
  if (!m) die(`Invalid cgroup argument ${JSON.stringify(c)}: expected <cgroup_file>=<value>, e.g. cpuset.cpus=0`);
  if (cgroupVersion === "2" && m[1] === "tasks") die("cgroup v2 has no 'tasks' file");
  settings[m[1]] = m[2];
}
const limits = { "no-file": "2048" };
for (const r of o["resource-limit"]) {
  const m = /^(fsize|no-file)=(\d+)$/.exec(r);
  if (!m) die(`Invalid resource limit ${JSON.stringify(r)}: expected fsize=<n> or no-file=<n>`);
  limits[m[1]] = m[2];
}
if (o["new-pid-ns"]) die("fake jailer: --new-pid-ns is not modelled");
const base = o["chroot-base-dir"] ?? "/srv/jailer";
// A test double never builds jails in the host's default location.
if (base === "/srv/jailer" || !isAbsolute(base)) die(`fake jailer: --chroot-base-dir must be an absolute path other than /srv/jailer, got ${base}`);
if (o.netns && !existsSync(o.netns)) die(`Failed to open the network namespace ${o.netns}: No such file or directory`);
for (const e of o.extra) if (e === "--id" || e.startsWith("--id=")) die("fake jailer: --id after -- would duplicate the one the jailer passes");

const cgroupRoot = process.env.FAKE_JAILER_CGROUP_ROOT;
if (!cgroupRoot || !isAbsolute(cgroupRoot)) die("fake jailer: FAKE_JAILER_CGROUP_ROOT (an absolute directory standing in for /sys/fs/cgroup) is required");

// <chroot_base>/<exec_file_name>/<id>/root; kept when it exists (the caller may have put files in it).
const uid = Number(o.uid);
const gid = Number(o.gid);
const chrootDir = join(base, execName, o.id, "root");
mkdirSync(chrootDir, { recursive: true });
copyFileSync(execFile, join(chrootDir, execName));
chmodSync(join(chrootDir, execName), 0o755);

// Cgroups: with any --cgroup (or v1), <cgroup_base>/<parent_cgroup>/<id> with the settings written in.
const parent = o["parent-cgroup"] ?? execName;
let cgroupDir;
if (o.cgroup.length > 0 || cgroupVersion === "1") {
  cgroupDir = join(cgroupRoot, parent, o.id);
  mkdirSync(cgroupDir, { recursive: true });
}

mkdirSync(join(chrootDir, "dev", "net"), { recursive: true });
let devNodes = "mknod";
for (const [path, major, minor] of [
  ["dev/net/tun", 10, 200],
  ["dev/kvm", 10, 232],
]) {
  const p = join(chrootDir, path);
  if (existsSync(p)) continue;
  const r = spawnSync("mknod", ["-m", "0600", p, "c", String(major), String(minor)], { stdio: "ignore", timeout: 5_000 });
  if (r.status !== 0) {
    devNodes = "placeholder";
    writeFileSync(p, "", { mode: 0o600 });
  }
  chownSync(p, uid, gid);
}
chownSync(chrootDir, uid, gid);

appendFileSync(
  join(cgroupRoot, "records.jsonl"),
  `${JSON.stringify({ id: o.id, argv: process.argv.slice(2), uid, gid, chrootDir, cgroupVersion, parentCgroup: parent, cgroupDir: cgroupDir ?? null, settings, limits, devNodes })}\n`,
);

const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
const startUs = Math.round(performance.now() * 1000);
const cmd = [
  "env",
  "-i",
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  `FAKE_FC_CHROOT=${chrootDir}`,
  ...(o.netns ? ["nsenter", `--net=${o.netns}`] : []),
  "prlimit",
  `--nofile=${limits["no-file"]}`,
  ...(limits.fsize ? [`--fsize=${limits.fsize}`] : []),
  "setpriv",
  `--reuid=${uid}`,
  `--regid=${gid}`,
  "--clear-groups",
  "--inh-caps=-all",
  "--bounding-set=-all",
  "--",
  join(chrootDir, execName),
  `--id=${o.id}`,
  `--start-time-us=${startUs}`,
  `--start-time-cpu-us=${Math.round(process.cpuUsage().user)}`,
  ...o.extra,
];
const redirect = o.daemonize ? " </dev/null >/dev/null 2>&1" : "";
process.stdout.write(`cd ${q(chrootDir)} && exec ${cmd.map(q).join(" ")}${redirect}\n`);
