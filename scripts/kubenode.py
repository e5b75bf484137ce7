#!/usr/bin/env python3
"""A real one-node Kubernetes cluster on this machine, in a temporary directory, torn down completely.

Library (Python 3.11, standard library only; run as root):

    from kubenode import Node, WEBTOOL_C
    with Node(kube_bin="/path/to/kube/bin", workdir=None, log=print) as node:  # up() ... down()
        node.kubeconfig, node.node_ip, node.workdir               # admin kubeconfig, 10.244.0.1
        node.kubectl("apply", "-f", "-", input=manifest)         # -> stdout; KubeNodeError if rc != 0
        node.import_image("target/images/ferry-0.1.0.tar")          # ctr -n k8s.io images import
        node.build_image("localhost/kubenode/webtool:1", WEBTOOL_C)   # C source or static binary
        node.create_local_pv("data-0", size="2Gi")                # for PVCs (StorageClass "local")
        node.kill_container("ferry", "ferry-broker-0")             # SIGKILL through containerd
        node.resolve("ferry-broker.ferry.svc.cluster.local")      # what the cluster DNS answers
        node.api("GET", "/api/v1/nodes")                          # (status, JSON), admin cert
        node.ctr("images", "ls")                                  # ctr on the node's containerd
    Node.attach(workdir)      # a Node for a cluster that `kubenode.py up` runs (kubectl, down)

    Node(...) keywords: kube_bin, workdir (default: a new /tmp/kubenode-*), log (callable; None:
    silent), timeout (each wait, 120 s), logs_dir (down() copies every log there first),
    verbosity (components' --v), dns_log_queries, bridge/pod_cidr/service_cidr (cni0,
    10.244.0.0/24, 10.96.0.0/16), kubectl (path).

CLI:

    scripts/kubenode.py up [--kube-bin DIR] [--workdir DIR] [--logs-dir DIR]
        # prints "kubeconfig: PATH" and "export KUBECONFIG=PATH"; stays up until Ctrl-C/SIGTERM
    scripts/kubenode.py down --workdir DIR [--logs-dir DIR]
        # idempotent cleanup of a previous run, also after a crash (kill -9 of anything)

Test programs (compiled on demand with gcc -static): PAUSE_C (the sandbox image,
localhost/kubenode/pause:1, built and imported by up()) and WEBTOOL_C, a one-binary HTTP
server/client: `webtool serve [PORT]` (8080, answers 200 "hello from HOSTNAME"), `webtool get
[-r N] HOST:PORT [PATH]`, `webtool resolve NAME`, `webtool sleep`, `webtool write FILE TEXT`,
`webtool cat FILE`. build_image() puts the binary at /bin/<name> (entrypoint by default), with
/etc/passwd naming uid 65532 "nonroot" and a writable /tmp.

What runs (each process in its own session, its pid and start time recorded in
WORKDIR/kubenode.json, its output in WORKDIR/<component>.log):

    etcd                     127.0.0.1, two free ports, data in WORKDIR/etcd
    kube-apiserver           https://NODE_IP:6443, Node+RBAC authorization, client certificates
                             (openssl-made CA; admin cert in O=system:masters), front proxy set up
    kube-controller-manager  service-account credentials, no node IPAM (the kubelet has a podCIDR)
    kube-scheduler
    containerd               its own root/state/socket under WORKDIR/containerd (never the host's
                             /run/containerd/containerd.sock), CRI plugin, runc, overlayfs
    kubelet                  node "kubenode", cgroupfs driver (cgroup v1 allowed), anonymous
                             authentication + AlwaysAllow (a test node), image GC off (imported
                             images cannot be pulled again), eviction thresholds at 1 %
    kube-proxy               iptables mode (the distribution's iptables if it works, else legacy)
    dnsmasq                  the cluster DNS, on NODE_IP:53 (see "DNS" below)

Network: a bridge (cni0) with NODE_IP = 10.244.0.1/24 is created first; the API server, the
kubelet (--node-ip) and dnsmasq bind that address, so it is reachable from the host and from
pods (through the `kubernetes` Service, 10.96.0.1:443, which kube-proxy DNATs to it). Pods get
10.244.0.0/24 addresses from the CNI bridge + host-local + portmap plugins; Services get
10.96.0.0/16 ClusterIPs, reachable from pods and from the host (a route for the service range
through the bridge is added). Pods must use images imported into containerd (no registry is
reachable): `imagePullPolicy: Never` (or IfNotPresent with a non-latest tag).

DNS: no CoreDNS. dnsmasq answers from an --addn-hosts file that a background thread of the
process that ran up() rewrites (then SIGHUP) whenever the cluster's Services or EndpointSlices
change (polled every second through the API):
    <svc>.<ns>.svc.cluster.local            A  ClusterIP
    <svc>.<ns>.svc.cluster.local            A  every ready endpoint address (headless Services)
    <hostname>.<svc>.<ns>.svc.cluster.local A  endpoints with a hostname (StatefulSet pods)
    <svc>.<ns>.svc.cluster.local            A  for ExternalName Services whose externalName is
                                               one of the names above: the target's addresses
                                               (no CNAME record: that would need a dnsmasq restart)
Everything else is NXDOMAIN (nothing is forwarded: there is no network), so resolvers walk their
search path. The kubelet gives pods `nameserver NODE_IP`, `search <ns>.svc.cluster.local
svc.cluster.local cluster.local`, `options ndots:5`, so `svc`, `svc.ns` and the full name all
resolve. New names appear within about a second. No SRV records, no pod A records
(<a-b-c-d>.<ns>.pod), no kube-dns Service.

Storage: StorageClass `local` (kubernetes.io/no-provisioner, WaitForFirstConsumer, the default
class); create_local_pv() adds `local` PersistentVolumes backed by WORKDIR/pv/<name> (0777).

Teardown (down(); also run when up() fails halfway, and by `down --workdir` from another process):
the kubelet first; every container task SIGKILLed and deleted through containerd; containerd;
its shims, and whatever is left in the containers' cgroups (after a crash); kube-proxy,
scheduler, controller manager, dnsmasq, then the API server, then etcd; every mount under
WORKDIR (reverse order, lazily if needed; this also frees the pods' network namespaces and so
their veths); conntrack entries of the pod and service ranges; the KUBE-* and CNI-* iptables
chains (IPv4 and IPv6, every table) and the nftables tables iptables-nft created for us (when
empty again); the bridge and its veths; the kubelet's /var/log/containers symlinks, libcni's
result cache files of our sandboxes, the shims' sockets in /run/containerd/s, kubectl's
discovery cache of this server; the host directories and cgroups (…/k8s.io) that did not exist
before up(), when empty; the sysctls changed (restored to the values recorded before up()); and
WORKDIR itself (only once nothing is mounted under it).

Only one node at a time per machine (fixed bridge, addresses and component ports).

Workaround, Node._openapi_served: a kube-apiserver built with Go >= 1.27 (encoding/json/v2 on by
default) serves broken OpenAPI documents, and kubectl apply/create cannot validate; up() detects
it, warns, and kubectl() then adds --validate=false to apply/create/replace. The fix is to build
the apiserver with GOEXPERIMENT=nojsonv2.

Missing Debian packages (etcd-server, containerd, runc, containernetworking-plugins, iptables,
conntrack, dnsmasq-base, openssl, gcc, libc6-dev, iproute2) are installed with apt-get.
"""

import argparse
import base64
import contextlib
import fcntl
import gzip
import hashlib
import io
import ipaddress
import json
import os
import random
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request

DEFAULT_KUBE_BIN = os.environ.get("FERRY_KUBE_BIN", "")
NODE_NAME = "kubenode"
CNI_NETWORK = "kubenode"
PAUSE_IMAGE = "localhost/kubenode/pause:1"
# kubectl commands that validate objects against the OpenAPI schema (see Node._openapi_served).
VALIDATING_KUBECTL_COMMANDS = {"apply", "create", "replace"}
VALUE_FLAGS = {"-n", "--namespace", "--context", "--cluster", "--user", "-s", "--server", "--as", "--as-group",
               "--kubeconfig", "--cache-dir", "--request-timeout", "-v"}
STATE_FILE = "kubenode.json"
LOCK_FILE = "kubenode.lock"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CNI_BIN_DIR = "/usr/lib/cni"
CNI_CACHE_DIR = "/var/lib/cni/results"
CONTAINER_LOG_LINKS = "/var/log/containers"
SHIM_SOCKET_DIR = "/run/containerd/s"
KUBE_COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"]
# Stop order after the kubelet, the containers and containerd are gone.
CONTROL_PLANE_STOP_ORDER = [["kube-proxy", "kube-scheduler", "kube-controller-manager", "dnsmasq"],
                            ["kube-apiserver"], ["etcd"]]
# Host paths some component may create; the ones that did not exist before up() are removed by
# down() when they are empty again.
HOST_PATHS = [
    "/var/log/containers", "/var/log/pods", "/var/lib/kubelet", "/var/lib/cni/results",
    "/var/lib/cni/networks", "/var/lib/cni", "/run/netns", "/etc/cni/net.d", "/etc/cni",
    "/opt/cni/bin", "/opt/cni", "/run/containerd/s", "/run/containerd/fifo", "/run/containerd",
    "/run/xtables.lock", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
    "/usr/libexec/kubernetes/kubelet-plugins/volume", "/usr/libexec/kubernetes/kubelet-plugins",
    "/usr/libexec/kubernetes", "/etc/kubernetes/manifests", "/etc/kubernetes",
    "/run/mount",
]
# Host directories the kubelet writes whatever its --root-dir (the device plugin socket); deleted
# with their content by down() when they did not exist before up().
HOST_TREES = ["/var/lib/kubelet"]
# Sysctls set by us (ip_forward, bridge-nf-call-iptables), by the kubelet (kernel tunables it
# "fixes" unless protectKernelDefaults), by the CNI bridge plugin and kube-proxy. Their values are
# recorded before anything starts and restored by down().
SYSCTLS = [
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/conf/all/forwarding",
    "net/ipv6/conf/all/forwarding",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
]
# Tool → Debian package providing it (installed with apt-get when missing).
DEBIAN_PACKAGES = {
    "etcd": "etcd-server",
    "containerd": "containerd",
    "ctr": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "runc": "runc",
    CNI_BIN_DIR + "/bridge": "containernetworking-plugins",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "dnsmasq": "dnsmasq-base",
    "openssl": "openssl",
    "gcc": "gcc",
    "libc.a": "libc6-dev",
    "ip": "iproute2",
}

PAUSE_C = r"""
/* pause: the pod sandbox's process. Sleeps until SIGTERM/SIGINT, reaps zombies. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, quit);
  signal(SIGTERM, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
  return 0;
}
"""

WEBTOOL_C = r"""
/* webtool: a tiny static test program for kubenode clusters.
 *   webtool [serve [PORT]]          HTTP/1.0 server on PORT (8080): every request gets
 *                                   "200 OK" and "hello from HOSTNAME\n"; logs each on stdout
 *   webtool get [-r N] HOST:PORT [PATH]
 *                                   one GET (tried up to N times, a second apart); prints the
 *                                   response; exit 0 on a 200 answer, 1 otherwise
 *   webtool HOST:PORT               the same as `get HOST:PORT /`
 *   webtool resolve [-r N] NAME     prints NAME's IPv4 addresses (getaddrinfo: resolv.conf)
 *   webtool sleep                   sleeps until SIGTERM/SIGINT
 *   webtool write FILE TEXT         appends TEXT and a newline to FILE
 *   webtool cat FILE                prints FILE
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void quit(int s) { (void)s; _exit(0); }

static int get(const char *target, const char *path) {
  char host[256], port[16];
  const char *colon = strrchr(target, ':');
  if (!colon || colon == target) { printf("want HOST:PORT, got %s\n", target); return 2; }
  snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
  snprintf(port, sizeof port, "%s", colon + 1);
  struct addrinfo hints, *res;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int e = getaddrinfo(host, port, &hints, &res);
  if (e) { printf("resolve %s: %s\n", host, gai_strerror(e)); return 1; }
  char ip[64];
  inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, res->ai_addr, res->ai_addrlen)) {
    printf("connect %s (%s:%s): %s\n", host, ip, port, strerror(errno));
    close(fd);
    freeaddrinfo(res);
    return 1;
  }
  freeaddrinfo(res);
  char req[1024];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: webtool\r\n\r\n", path, host);
  if (write(fd, req, n) != n) { printf("send to %s: %s\n", ip, strerror(errno)); close(fd); return 1; }
  static char resp[65536];
  size_t len = 0;
  ssize_t r;
  while (len < sizeof resp - 1 && (r = read(fd, resp + len, sizeof resp - 1 - len)) > 0) len += r;
  resp[len] = 0;
  close(fd);
  printf("GET http://%s:%s%s (%s):\n%s\n", host, port, path, ip, resp);
  return (strncmp(resp, "HTTP/1.0 200", 12) == 0 || strncmp(resp, "HTTP/1.1 200", 12) == 0) ? 0 : 1;
}

static int resolve(const char *name) {
  struct addrinfo hints, *res, *p;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  int e = getaddrinfo(name, NULL, &hints, &res);
  if (e) { printf("resolve %s: %s\n", name, gai_strerror(e)); return 1; }
  for (p = res; p; p = p->ai_next) {
    char ip[64];
    inet_ntop(AF_INET, &((struct sockaddr_in *)p->ai_addr)->sin_addr, ip, sizeof ip);
    printf("%s %s\n", name, ip);
  }
  freeaddrinfo(res);
  return 0;
}

static int serve(int port) {
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  signal(SIGPIPE, SIG_IGN);
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 128)) {
    printf("listen on :%d: %s\n", port, strerror(errno));
    return 1;
  }
  char host[256] = "?";
  gethostname(host, sizeof host);
  printf("serving on :%d as %s\n", port, host);
  for (;;) {
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    int c = accept(fd, (struct sockaddr *)&peer, &pl);
    if (c < 0) continue;
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[4096];
    ssize_t n = read(c, req, sizeof req - 1);
    if (n < 0) n = 0;
    req[n] = 0;
    char *eol = strpbrk(req, "\r\n");
    if (eol) *eol = 0;
    char body[512], resp[1024];
    int bl = snprintf(body, sizeof body, "hello from %s\n", host);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n%s", bl, body);
    if (write(c, resp, rl) < 0) {}
    close(c);
    printf("%s \"%s\" 200\n", inet_ntoa(peer.sin_addr), req);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *cmd = argc > 1 ? argv[1] : "serve";
  if (!strcmp(cmd, "serve")) return serve(argc > 2 ? atoi(argv[2]) : 8080);
  if (!strcmp(cmd, "sleep")) {
    signal(SIGTERM, quit);
    signal(SIGINT, quit);
    for (;;) pause();
  }
  if (!strcmp(cmd, "get") || !strcmp(cmd, "resolve")) {
    int i = 2, tries = 1;
    if (i + 1 < argc && !strcmp(argv[i], "-r")) { tries = atoi(argv[i + 1]); i += 2; }
    if (i >= argc) { fprintf(stderr, "usage: webtool %s [-r N] ARG\n", cmd); return 2; }
    int rc = 1;
    for (int t = 0; t < (tries < 1 ? 1 : tries); t++) {
      if (t) sleep(1);
      rc = !strcmp(cmd, "get") ? get(argv[i], i + 1 < argc ? argv[i + 1] : "/") : resolve(argv[i]);
      if (rc == 0 || rc == 2) break;
    }
    return rc;
  }
  if (!strcmp(cmd, "write") && argc == 4) {
    FILE *f = fopen(argv[2], "a");
    if (!f || fprintf(f, "%s\n", argv[3]) < 0 || fclose(f)) { printf("write %s: %s\n", argv[2], strerror(errno)); return 1; }
    return 0;
  }
  if (!strcmp(cmd, "cat") && argc == 3) {
    FILE *f = fopen(argv[2], "r");
    if (!f) { printf("open %s: %s\n", argv[2], strerror(errno)); return 1; }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
  }
  if (strchr(cmd, ':')) return get(cmd, argc > 2 ? argv[2] : "/");
  fprintf(stderr, "usage: webtool [serve [PORT] | get [-r N] HOST:PORT [PATH] | resolve [-r N] NAME | sleep |\n"
                  "                write FILE TEXT | cat FILE]\n");
  return 2;
}
"""


class KubeNodeError(Exception):
    """Bring-up or teardown failed; the message names the component and quotes its log."""


def _stderr_log(message):
    print(f"kubenode: {message}", file=sys.stderr, flush=True)


def _run(argv, *, input=None, check=True, timeout=120, env=None, capture=True):
    """Runs argv; returns CompletedProcess (text). Raises KubeNodeError when check and rc != 0."""
    try:
        p = subprocess.run(
            argv, input=input, capture_output=capture, text=True, timeout=timeout,
            env=env if env is not None else _clean_env(), stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise KubeNodeError(f"`{shlex.join(argv)}` did not finish within {timeout} s") from None
    except FileNotFoundError:
        raise KubeNodeError(f"`{argv[0]}` not found") from None
    if check and p.returncode != 0:
        out = ((p.stderr or "") + (p.stdout or "")).strip()
        raise KubeNodeError(f"`{shlex.join(argv)}` failed (exit {p.returncode}): {out[-3000:]}")
    return p


def _clean_env(extra=None):
    """Our environment without proxy settings (every address here is local) and KUBECONFIG."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in (
        "http_proxy", "https_proxy", "all_proxy", "no_proxy", "kubeconfig")}
    env["PATH"] = PATH + ":" + env.get("PATH", "")
    if extra:
        env.update(extra)
    return env


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


def _proc_start_time(pid):
    """The start time of process pid (clock ticks since boot), None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tcp_listeners(port):
    """The local addresses with a TCP socket listening on port (from /proc/net/tcp{,6})."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:
                continue
            raw = bytes.fromhex(addr)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def _cgroup_parents():
    """The cgroup (v1) directories containerd's CRI creates as the pods' parent ("k8s.io")."""
    root = "/sys/fs/cgroup"
    try:
        hierarchies = sorted(os.listdir(root))
    except OSError:
        return []
    return [os.path.join(root, h, "k8s.io") for h in hierarchies
            if os.path.isdir(os.path.join(root, h)) and not os.path.islink(os.path.join(root, h))]


def _sysctl_path(name):
    return "/proc/sys/" + name


def _read_sysctl(name):
    try:
        with open(_sysctl_path(name)) as f:
            return f.read().strip()
    except OSError:
        return None


def _write_sysctl(name, value):
    with open(_sysctl_path(name), "w") as f:
        f.write(str(value))


def _unescape_mount(path):
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _mounts_under(root):
    """Mount points at or below root, in mount order (so unmount them reversed)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape_mount(line.split()[4])
            if mp == root or mp.startswith(root + "/"):
                found.append(mp)
    return found


def _which(tool):
    if tool.startswith("/"):
        return tool if os.path.exists(tool) else None
    if tool == "libc.a":
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
            if os.path.exists(os.path.join(d, "libc.a")):
                return os.path.join(d, "libc.a")
        return None
    return shutil.which(tool, path=PATH)


def ensure_tools(log=_stderr_log, tools=None):
    """Installs (apt-get) the Debian packages of the tools that are missing."""
    missing = sorted({DEBIAN_PACKAGES[t] for t in (tools or DEBIAN_PACKAGES) if not _which(t)})
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise KubeNodeError(f"missing Debian packages {missing} and no apt-get to install them")
    log(f"installing Debian packages: {' '.join(missing)}")
    env = _clean_env({"DEBIAN_FRONTEND": "noninteractive"})
    # Keep the machine's proxy settings for apt itself.
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        if k in os.environ:
            env[k] = os.environ[k]
    _run(["apt-get", "update"], env=env, timeout=600)
    _run(["apt-get", "install", "-y", *missing], env=env, timeout=1200)
    still = [t for t in (tools or DEBIAN_PACKAGES) if not _which(t)]
    if still:
        raise KubeNodeError(f"still missing after apt-get install: {still}")


# ---------------------------------------------------------------------------------------------
# Images


def compile_static(source, out_path):
    """Compiles C source into a static, stripped binary (gcc -static)."""
    ensure_tools(tools=["gcc", "libc.a"])
    with tempfile.TemporaryDirectory(prefix="kubenode-cc-") as tmp:
        src = os.path.join(tmp, "main.c")
        with open(src, "w") as f:
            f.write(source)
        _run(["gcc", "-static", "-O2", "-s", "-o", out_path, src])
    return out_path


def _tar_add(tar, name, data=None, mode=0o644, kind="file"):
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    if kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def write_oci_archive(out_path, name, files, entrypoint, cmd=None, env=None, user=None, workdir="/"):
    """Writes a one-layer OCI image archive, importable with `ctr images import`.

    name: the full image reference (e.g. localhost/kubenode/webtool:1), recorded both as the
    containerd image name annotation and (its tag) as the OCI ref name, as scripts/image does.
    files: {path in the image: (bytes, mode)}. The image also has /etc/passwd and /etc/group
    (root, nonroot 65532) and a world-writable /tmp.
    """
    files = dict(files)
    files.setdefault("etc/passwd", (b"root:x:0:0:root:/root:/sbin/nologin\n"
                                    b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n", 0o644))
    files.setdefault("etc/group", (b"root:x:0:\nnonroot:x:65532:\n", 0o644))
    dirs = {"tmp": 0o1777, "home": 0o755}
    for path in files:
        parts = path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:i]), 0o755)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            _tar_add(tar, d, mode=dirs[d], kind="dir")
        for path in sorted(files):
            data, mode = files[path]
            _tar_add(tar, path.strip("/"), data, mode)
    layer = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(layer)
    layer_gz = gz.getvalue()
    if isinstance(entrypoint, str):
        entrypoint = [entrypoint]
    config = {
        "architecture": "amd64" if os.uname().machine == "x86_64" else "arm64",
        "os": "linux",
        "config": {
            "Entrypoint": list(entrypoint),
            "Env": list(env or ["PATH=/bin:/usr/bin:/usr/local/bin"]),
            "WorkingDir": workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{_sha(layer)}"]},
    }
    if cmd:
        config["config"]["Cmd"] = list(cmd)
    if user:
        config["config"]["User"] = user
    config_b = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{_sha(config_b)}", "size": len(config_b)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": f"sha256:{_sha(layer_gz)}", "size": len(layer_gz)}],
    }
    manifest_b = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{_sha(manifest_b)}",
            "size": len(manifest_b),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }],
    }
    with tarfile.open(out_path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _tar_add(tar, "blobs", mode=0o755, kind="dir")
        _tar_add(tar, "blobs/sha256", mode=0o755, kind="dir")
        for blob in (config_b, manifest_b, layer_gz):
            _tar_add(tar, f"blobs/sha256/{_sha(blob)}", blob)
        _tar_add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        _tar_add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return out_path


# ---------------------------------------------------------------------------------------------
# DNS


def dns_query(server, name, port=53, timeout=2.0, qtype=1):
    """Asks server for name's A records (UDP); returns (rcode, [addresses])."""
    qid = random.randrange(65536)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p) + b"\0"
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query, (server, port))
        while True:
            data, _ = s.recvfrom(4096)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                break
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", data[:12])
    pos = 12

    def skip_name(pos):
        while True:
            n = data[pos]
            if n == 0:
                return pos + 1
            if n & 0xC0 == 0xC0:
                return pos + 2
            pos += n + 1

    for _ in range(qd):
        pos = skip_name(pos) + 4
    addresses = []
    for _ in range(an):
        pos = skip_name(pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            addresses.append(socket.inet_ntoa(data[pos:pos + 4]))
        pos += rdlen
    return flags & 0xF, addresses


# ---------------------------------------------------------------------------------------------
# The node


class Node:
    """A one-node cluster. up() in __enter__, down() in __exit__ (also when the block raises)."""

    def __init__(self, kube_bin=DEFAULT_KUBE_BIN, workdir=None, log=_stderr_log, *,
                 bridge="cni0", pod_cidr="10.244.0.0/24", service_cidr="10.96.0.0/16",
                 cluster_domain="cluster.local", timeout=120, kubectl=None, dns_interval=1.0,
                 verbosity=1, dns_log_queries=False, logs_dir=None):
        self.kube_bin = os.path.abspath(kube_bin) if kube_bin else None
        self.workdir = os.path.realpath(workdir) if workdir else None
        self._log = log or (lambda message: None)
        self.bridge = bridge
        self.pod_cidr = str(ipaddress.ip_network(pod_cidr))
        self.service_cidr = str(ipaddress.ip_network(service_cidr))
        net = ipaddress.ip_network(pod_cidr)
        self.node_ip = str(net.network_address + 1)
        self.kubernetes_service_ip = str(ipaddress.ip_network(service_cidr).network_address + 1)
        self.cluster_domain = cluster_domain
        self.node_name = NODE_NAME
        self.timeout = timeout
        self.dns_interval = dns_interval
        self.verbosity = verbosity
        self.dns_log_queries = dns_log_queries
        self.logs_dir = os.path.abspath(logs_dir) if logs_dir else None
        self._kubectl = kubectl
        self.apiserver_port = 6443
        self.server = f"https://{self.node_ip}:{self.apiserver_port}"
        self._procs = {}
        self._state = None
        self._ssl = None
        self._dns_thread = None
        self._dns_stop = threading.Event()
        self._dns_error_logged = 0.0
        self.up_seconds = None
        self.openapi_broken = False

    # -- paths -------------------------------------------------------------------------------

    def path(self, *parts):
        """A path inside the work directory."""
        return os.path.join(self.workdir, *parts)

    @property
    def kubeconfig(self):
        """The admin kubeconfig (client certificate in O=system:masters, embedded)."""
        return self.path("admin.kubeconfig")

    @property
    def ctr_address(self):
        return self.path("containerd", "containerd.sock")

    @property
    def dns_ip(self):
        return self.node_ip

    def _bin(self, name):
        if name == "kubectl":
            for cand in (self._kubectl, self.kube_bin and os.path.join(self.kube_bin, "kubectl"),
                         shutil.which("kubectl", path=PATH), "/usr/bin/kubectl"):
                if cand and os.access(cand, os.X_OK):
                    return cand
            raise KubeNodeError("kubectl not found (give Node(kubectl=...) or put it on PATH)")
        if name in KUBE_COMPONENTS:
            if not self.kube_bin:
                raise KubeNodeError("no folder of Kubernetes binaries: give Node(kube_bin=...), "
                                    "--kube-bin or FERRY_KUBE_BIN")
            p = os.path.join(self.kube_bin, name)
            if not os.access(p, os.X_OK):
                raise KubeNodeError(f"{name} not found in {self.kube_bin}")
            return p
        p = _which(name)
        if not p:
            raise KubeNodeError(f"{name} not found")
        return p

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.down()
        except Exception as e:  # do not hide the block's own exception
            if exc_type is None:
                raise
            self._log(f"teardown after an error also failed: {e}")
        return False

    # -- state file --------------------------------------------------------------------------

    def _save_state(self):
        tmp = self.path(STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self._state, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path(STATE_FILE))

    @classmethod
    def attach(cls, workdir, log=_stderr_log, logs_dir=None):
        """A Node for the cluster another process brought up in workdir (for kubectl & co. and
        down()); it runs no DNS updater of its own."""
        workdir = os.path.realpath(workdir)
        with open(os.path.join(workdir, STATE_FILE)) as f:
            state = json.load(f)
        node = cls(kube_bin=state.get("kube_bin"), workdir=workdir, log=log, bridge=state["bridge"],
                   pod_cidr=state["pod_cidr"], service_cidr=state["service_cidr"],
                   cluster_domain=state.get("cluster_domain", "cluster.local"), kubectl=state.get("kubectl"),
                   logs_dir=logs_dir or state.get("logs_dir"))
        node._state = state
        node.openapi_broken = state.get("openapi_broken", False)
        return node

    # -- processes ---------------------------------------------------------------------------

    def _start(self, name, argv):
        logf = open(self.path(f"{name}.log"), "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                 cwd=self.workdir, env=self._env, start_new_session=True)
        finally:
            logf.close()
        self._procs[name] = p
        self._state["procs"][name] = {"pid": p.pid, "start": _proc_start_time(p.pid), "argv0": argv[0]}
        self._save_state()
        self._log(f"started {name} (pid {p.pid}), log {self.path(name + '.log')}")
        return p

    def _recorded_alive(self, name):
        """The recorded pid of component name if that very process still runs."""
        rec = (self._state or {}).get("procs", {}).get(name)
        if not rec:
            return None
        start = _proc_start_time(rec["pid"])
        if start is None or (rec.get("start") is not None and start != rec["start"]):
            return None
        return rec["pid"]

    def _check_alive(self):
        for name, p in self._procs.items():
            rc = p.poll()
            if rc is not None:
                raise KubeNodeError(f"{name} exited with code {rc}; last lines of {self.path(name + '.log')}:\n"
                                    f"{_tail(self.path(name + '.log'))}")

    def _wait(self, what, condition, components=(), timeout=None, interval=0.5):
        """Polls condition() until it returns a true value (returned); checks every started
        component is still running; raises KubeNodeError naming what and quoting the logs of
        components on timeout."""
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            self._check_alive()
            try:
                result = condition()
                if result:
                    return result
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                last_error = e
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- last lines of {self.path(c + '.log')}:\n{_tail(self.path(c + '.log'), 25)}"
                                 for c in components)
                raise KubeNodeError(f"timed out after {timeout} s waiting for {what}"
                                    + (f" (last error: {last_error})" if last_error else "") + "\n" + logs)
            time.sleep(interval)

    def _kill(self, names, grace=10):
        """SIGTERM the named components, SIGKILL what is left after grace seconds."""
        pids = {}
        for name in names:
            pid = self._recorded_alive(name)
            if pid:
                pids[name] = pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        self._wait_gone(pids, grace, kill=True)

    def _wait_gone(self, pids, grace, kill):
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            for name in list(pids):
                p = self._procs.get(name)
                if p is not None:
                    p.poll()
                if _proc_start_time(pids[name]) is None:
                    del pids[name]
            time.sleep(0.1)
        if pids and kill:
            for name, pid in pids.items():
                self._log(f"{name} (pid {pid}) did not stop in {grace} s; SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._wait_gone(pids, 5, kill=False)
        for p in self._procs.values():
            p.poll()

    # -- API ---------------------------------------------------------------------------------

    def _ssl_context(self):
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self.path("pki", "ca.crt"))
            ctx.load_cert_chain(self.path("pki", "admin.crt"), self.path("pki", "admin.key"))
            self._ssl = ctx
        return self._ssl

    def api(self, method, path, body=None, timeout=10, accept="application/json"):
        """One API request with the admin credentials: (HTTP status, decoded JSON or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": accept})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self._ssl_context()))
        try:
            with opener.open(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if not accept.endswith("json"):
            return status, raw
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def _create(self, path, obj):
        status, out = self.api("POST", path, obj)
        if status not in (200, 201, 202, 409):
            raise KubeNodeError(f"creating {obj['kind']} {obj['metadata']['name']} failed: {status} {out}")

    def kubectl(self, *args, input=None, check=True, timeout=300):
        """Runs kubectl with the admin kubeconfig; returns its stdout. With check, a non-zero exit
        raises KubeNodeError quoting stderr."""
        args = [str(a) for a in args]
        if self.openapi_broken and not any(a.startswith("--validate") for a in args):
            # Workaround (see _openapi_served): after the subcommand, i.e. the first positional
            # argument (not the value of a global flag).
            for i, a in enumerate(args):
                if a == "--":
                    break
                if not a.startswith("-") and (i == 0 or args[i - 1] not in VALUE_FLAGS):
                    if a in VALIDATING_KUBECTL_COMMANDS:
                        args.insert(i + 1, "--validate=false")
                    break
        p = _run([self._bin("kubectl"), "--kubeconfig", self.kubeconfig, "--cache-dir", self.path("kubectl-cache"),
                  *args],
                 input=input, check=check, timeout=timeout)
        return p.stdout

    def ctr(self, *args, check=True, timeout=120):
        """Runs ctr against this node's containerd, namespace k8s.io; returns stdout."""
        return _run(["ctr", "--address", self.ctr_address, "--namespace", "k8s.io", *map(str, args)],
                    check=check, timeout=timeout).stdout

    def resolve(self, name):
        """name's A records as the cluster DNS (dnsmasq) answers them ([] if NXDOMAIN)."""
        return dns_query(self.dns_ip, name)[1]

    # -- images ------------------------------------------------------------------------------

    def import_image(self, tar_path):
        """Imports an OCI (or docker) image archive into the node's containerd (namespace k8s.io);
        the image keeps the name in its index (io.containerd.image.name annotation / ref name).
        Returns the imported image names."""
        out = self.ctr("images", "import", os.path.abspath(tar_path), timeout=600)
        names = []
        for line in out.splitlines():
            if line.startswith("unpacking "):
                names.append(line.split()[1])
        self._log(f"imported {tar_path}: {', '.join(names) or out.strip()}")
        return names

    def build_image(self, name, program, entrypoint=None, *, binary_name=None, files=None, user=None,
                    import_image=True):
        """Builds a one-binary test image and imports it; returns name.

        program: a path to a static binary, or C source (compiled with gcc -static), e.g. this
        module's WEBTOOL_C. The binary lands at /bin/<binary_name> (default: the binary's file
        name, or for C source the image's last path component without tag); entrypoint defaults
        to it. files: extra {path: (bytes, mode)}. user: the image's User (e.g. "65532")."""
        repo = name.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
        out_dir = self.path("images")
        os.makedirs(out_dir, exist_ok=True)
        if os.path.isfile(program):
            binary_name = binary_name or os.path.basename(program)
            with open(program, "rb") as f:
                binary = f.read()
        else:
            binary_name = binary_name or repo
            bin_path = os.path.join(out_dir, f"{binary_name}-{_sha(program.encode())[:12]}")
            if not os.path.exists(bin_path):
                compile_static(program, bin_path)
            with open(bin_path, "rb") as f:
                binary = f.read()
        all_files = {f"bin/{binary_name}": (binary, 0o755)}
        all_files.update(files or {})
        tar = os.path.join(out_dir, f"{repo}-{_sha(name.encode())[:8]}.tar")
        write_oci_archive(tar, name, all_files, entrypoint or [f"/bin/{binary_name}"], user=user)
        if import_image:
            self.import_image(tar)
        return name

    # -- volumes & containers ----------------------------------------------------------------

    def create_local_pv(self, name, size="2Gi", storage_class="local", access_modes=("ReadWriteOnce",)):
        """A `local` PersistentVolume named name, backed by WORKDIR/pv/<name> (mode 0777, so any
        uid can write), bound to this node; returns the directory."""
        d = self.path("pv", name)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)
        self._create("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"kubenode/pv": name}},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": list(access_modes),
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": storage_class,
                "volumeMode": "Filesystem",
                "local": {"path": d},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.node_name]}]}]}},
            },
        })
        return d

    def container_id(self, namespace, pod, container=None):
        """The containerd id of a pod's (running) container (default: its only/first one)."""
        status, obj = self.api("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}")
        if status != 200:
            raise KubeNodeError(f"pod {namespace}/{pod}: {status} {obj}")
        statuses = obj.get("status", {}).get("containerStatuses", []) + \
            obj.get("status", {}).get("initContainerStatuses", [])
        if container is None:
            if not statuses:
                raise KubeNodeError(f"pod {namespace}/{pod} has no container statuses yet")
            st = statuses[0]
        else:
            st = next((s for s in statuses if s["name"] == container), None)
            if st is None:
                raise KubeNodeError(f"pod {namespace}/{pod} has no container {container!r} "
                                    f"(has {[s['name'] for s in statuses]})")
        cid = st.get("containerID", "")
        if not cid.startswith("containerd://"):
            raise KubeNodeError(f"container {st['name']} of {namespace}/{pod} has no containerd id yet ({cid!r})")
        return cid[len("containerd://"):]

    def kill_container(self, namespace, pod, container=None):
        """SIGKILLs a pod's container through containerd (the kubelet then sees it die and
        restarts it per the pod's restartPolicy). Returns the killed container id."""
        cid = self.container_id(namespace, pod, container)
        self.ctr("tasks", "kill", "--signal", "SIGKILL", cid)
        self._log(f"killed container {container or '(first)'} of {namespace}/{pod} ({cid[:12]})")
        return cid

    # ---------------------------------------------------------------------------------------
    # up

    def up(self):
        """Brings the node up; returns when the node is Ready, the `default` ServiceAccount
        exists, kube-proxy is healthy and the DNS answers. On failure tears down what it started
        and raises KubeNodeError (naming the component, quoting its log)."""
        started = time.monotonic()
        try:
            self._up()
        except BaseException:
            self._log("bring-up failed; tearing down")
            try:
                self.down()
            except Exception as e:  # noqa: BLE001
                self._log(f"teardown after the failed bring-up failed too: {e}")
            raise
        self.up_seconds = time.monotonic() - started
        self._log(f"node up in {self.up_seconds:.1f} s; KUBECONFIG={self.kubeconfig}")
        return self

    def _up(self):
        if os.geteuid() != 0:
            raise KubeNodeError("must run as root")
        ensure_tools(self._log)
        for c in KUBE_COMPONENTS:
            self._bin(c)
        self._bin("kubectl")
        if self.workdir is None:
            self.workdir = os.path.realpath(tempfile.mkdtemp(prefix="kubenode-"))
        elif os.path.exists(os.path.join(self.workdir, STATE_FILE)):
            self._log(f"{self.workdir} holds a previous node; tearing that down first")
            Node.attach(self.workdir, log=self._log).down()
        if os.path.isdir(self.workdir) and os.listdir(self.workdir):
            raise KubeNodeError(f"workdir {self.workdir} exists and is not empty")
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self._log(f"workdir {self.workdir}")
        self._env = _clean_env()
        self._state = {
            "version": 1, "workdir": self.workdir, "kube_bin": self.kube_bin, "kubectl": self._bin("kubectl"),
            "bridge": self.bridge, "pod_cidr": self.pod_cidr, "service_cidr": self.service_cidr,
            "cluster_domain": self.cluster_domain, "node_ip": self.node_ip, "logs_dir": self.logs_dir,
            "supervisor": {"pid": os.getpid(), "start": _proc_start_time(os.getpid())},
            "procs": {}, "sysctls": {},
            "host_paths_absent": [p for p in HOST_PATHS + HOST_TREES + _cgroup_parents()
                                  if not os.path.lexists(p)],
            "nft_tables": self._nft_tables(),
        }
        self._save_state()
        self._preflight()
        self._setup_host_network()
        self._make_pki()
        self._write_configs()
        pause_tar = self._build_pause_image()

        etcd_port, etcd_peer = _free_port(), _free_port()
        self._state["etcd_port"] = etcd_port
        self._start("etcd", [
            self._bin("etcd"), "--name", NODE_NAME, "--data-dir", self.path("etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"{NODE_NAME}=http://127.0.0.1:{etcd_peer}",
            "--initial-cluster-state", "new", "--snapshot-count", "10000",
        ])
        self._start("containerd", [self._bin("containerd"), "--config", self.path("containerd", "config.toml")])
        self._start("dnsmasq", self._dnsmasq_argv())

        def etcd_healthy():
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://127.0.0.1:{etcd_port}/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        self._wait("etcd to be healthy", etcd_healthy, ["etcd"])
        self._start("kube-apiserver", self._apiserver_argv(etcd_port))

        self._wait("containerd to answer",
                   lambda: _run(["ctr", "--address", self.ctr_address, "version"], check=False,
                                timeout=10).returncode == 0, ["containerd"])
        self.import_image(pause_tar)
        self._wait("dnsmasq to answer", lambda: dns_query(self.dns_ip, "kubenode.invalid", timeout=0.5) is not None,
                   ["dnsmasq"])

        self._wait("kube-apiserver to be ready",
                   lambda: self.api("GET", "/readyz", timeout=3) == (200, "ok"), ["kube-apiserver"])
        self._wait("kube-apiserver to serve its OpenAPI documents (kubectl validates with them)",
                   self._openapi_served, ["kube-apiserver"])
        self._state["openapi_broken"] = self.openapi_broken
        self._save_state()
        self._log("kube-apiserver ready")
        kc = self.path("controller-manager.kubeconfig")
        self._start("kube-controller-manager", [
            self._bin("kube-controller-manager"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1", "--leader-elect=false",
            f"--service-account-private-key-file={self.path('pki', 'sa.key')}",
            f"--root-ca-file={self.path('pki', 'ca.crt')}", "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={self.path('pki', 'ca.crt')}",
            f"--cluster-signing-key-file={self.path('pki', 'ca.key')}",
            "--allocate-node-cidrs=false", f"--cluster-cidr={self.pod_cidr}",
            f"--service-cluster-ip-range={self.service_cidr}", "--controllers=*,-nodeipam",
            f"--v={self.verbosity}",
        ])
        ks = self.path("scheduler.kubeconfig")
        self._start("kube-scheduler", [
            self._bin("kube-scheduler"), f"--kubeconfig={ks}", f"--authentication-kubeconfig={ks}",
            f"--authorization-kubeconfig={ks}", "--bind-address=127.0.0.1", "--leader-elect=false",
            f"--v={self.verbosity}",
        ])
        self._start("kubelet", [
            self._bin("kubelet"), f"--config={self.path('kubelet', 'config.json')}",
            f"--kubeconfig={self.path('kubelet.kubeconfig')}", f"--root-dir={self.path('kubelet')}",
            f"--cert-dir={self.path('kubelet', 'pki')}", f"--hostname-override={self.node_name}",
            f"--node-ip={self.node_ip}", f"--v={self.verbosity}",
        ])
        self._start("kube-proxy", [
            self._bin("kube-proxy"), f"--config={self.path('kube-proxy.json')}", f"--v={self.verbosity}",
        ])
        self._start_dns_updater()
        self._create("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Retain",
        })

        def node_ready():
            status, obj = self.api("GET", f"/api/v1/nodes/{self.node_name}")
            return status == 200 and any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in obj.get("status", {}).get("conditions", []))
        self._wait(f"node {self.node_name} to be Ready", node_ready, ["kubelet", "containerd"])
        self._log("node Ready")
        self._wait("the default ServiceAccount in namespace default",
                   lambda: self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
                   ["kube-controller-manager"])

        def proxy_healthy():
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    "http://127.0.0.1:10256/healthz", timeout=2) as r:
                return r.status == 200
        self._wait("kube-proxy to be healthy", proxy_healthy, ["kube-proxy"])
        want = f"kubernetes.default.svc.{self.cluster_domain}"
        self._wait(f"the DNS to answer {want}", lambda: self.resolve(want) == [self.kubernetes_service_ip],
                   ["dnsmasq"])

    def _openapi_served(self):
        """True once /openapi/v2 answers in protobuf, as kubectl (apply, create: client-side
        validation) asks for it; right after /readyz it may still answer 503 for a moment.

        Workaround: a kube-apiserver built with Go >= 1.27 (encoding/json/v2 on by default) and
        a kube-openapi that predates it serves OpenAPI JSON with Go field names ("Extensions",
        "OperationProps", ...) that its own protobuf conversion rejects, so /openapi/v2 in
        protobuf is 503 for good and every validating kubectl apply/create fails "failed to
        download openapi". Rebuild the apiserver with GOEXPERIMENT=nojsonv2. Until then
        kubectl() adds --validate=false to the commands that validate."""
        status, _ = self.api("GET", "/openapi/v2", timeout=20,
                             accept="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if status == 200:
            self.openapi_broken = False
            return True
        status, doc = self.api("GET", "/openapi/v2", timeout=20)
        if status == 200 and isinstance(doc, dict) and "Extensions" in doc:
            self.openapi_broken = True
            self._log("WARNING: kube-apiserver serves broken OpenAPI documents (Go field names such as "
                      "\"Extensions\"): it was built with Go >= 1.27's encoding/json/v2; rebuild it with "
                      "GOEXPERIMENT=nojsonv2. kubectl apply/create validation cannot work: node.kubectl() "
                      "adds --validate=false to them.")
            return True
        return False

    def _preflight(self):
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            raise KubeNodeError(f"network interface {self.bridge} already exists (another node, or a crashed "
                                f"one: `scripts/kubenode.py down --workdir DIR`)")
        # The ports our components listen on, and on which address.
        wildcard = {"0.0.0.0", "::"}
        for port, address in ((self.apiserver_port, self.node_ip), (10250, self.node_ip), (10248, "127.0.0.1"),
                              (10249, "127.0.0.1"), (10256, "127.0.0.1"), (10257, "127.0.0.1"),
                              (10259, "127.0.0.1")):
            taken = _tcp_listeners(port) & (wildcard | {address})
            if taken:
                raise KubeNodeError(f"port {port} is in use on {', '.join(sorted(taken))} (another node?)")
        # The iptables variant: the distribution's default if it works, else the legacy one.
        variant = None
        for cand in ("iptables", "iptables-legacy", "iptables-nft"):
            exe = _which(cand)
            if exe and _run([exe, "-w", "-t", "nat", "-S"], check=False).returncode == 0:
                variant = cand
                break
        if variant is None:
            raise KubeNodeError("no working iptables (tried iptables, iptables-legacy, iptables-nft)")
        if variant != "iptables":
            # Give every component that variant under the plain names.
            bindir = self.path("bin")
            os.makedirs(bindir, exist_ok=True)
            suffix = variant.split("-", 1)[1]
            for tool in ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                         "ip6tables-restore"):
                target = _which(f"{tool}-{suffix}")
                if target:
                    os.symlink(target, os.path.join(bindir, tool))
            self._env["PATH"] = bindir + ":" + self._env["PATH"]
        self._state["iptables"] = variant
        self._log(f"iptables variant: {variant}")

    def _setup_host_network(self):
        if not os.path.exists("/proc/sys/net/bridge"):
            _run(["modprobe", "br_netfilter"], check=False)
        for name in SYSCTLS:
            value = _read_sysctl(name)
            if value is not None:
                self._state["sysctls"][name] = value
        self._save_state()
        for name, value in (("net/ipv4/ip_forward", "1"), ("net/bridge/bridge-nf-call-iptables", "1")):
            try:
                _write_sysctl(name, value)
            except OSError as e:
                raise KubeNodeError(f"cannot set sysctl {name}={value}: {e}") from None
        prefix = ipaddress.ip_network(self.pod_cidr).prefixlen
        self._state["bridge_created"] = True
        self._save_state()
        _run(["ip", "link", "add", self.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.node_ip}/{prefix}", "dev", self.bridge])
        _run(["ip", "link", "set", self.bridge, "up"])
        # The host reaches ClusterIPs even without a default route; the source is the node IP.
        _run(["ip", "route", "replace", self.service_cidr, "dev", self.bridge, "src", self.node_ip])

    # -- PKI ---------------------------------------------------------------------------------

    def _make_pki(self):
        pki = self.path("pki")
        os.makedirs(pki)
        cnf = os.path.join(pki, "openssl.cnf")
        with open(cnf, "w") as f:
            f.write("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = kubenode\n"
                    "[v3_ca]\nbasicConstraints = critical,CA:TRUE\n"
                    "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier = hash\n")
        ca_key, ca_crt = os.path.join(pki, "ca.key"), os.path.join(pki, "ca.crt")
        _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ca_key])
        _run(["openssl", "req", "-config", cnf, "-x509", "-new", "-key", ca_key, "-out", ca_crt, "-days", "3650",
              "-subj", "/CN=kubenode-ca", "-extensions", "v3_ca"])

        def leaf(name, subject, sans=(), server=False):
            key, csr, crt = (os.path.join(pki, f"{name}.{x}") for x in ("key", "csr", "crt"))
            ext = os.path.join(pki, f"{name}.ext")
            with open(ext, "w") as f:
                f.write("basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
                        f"extendedKeyUsage = {'serverAuth,clientAuth' if server else 'clientAuth'}\n"
                        "authorityKeyIdentifier = keyid\n")
                if sans:
                    f.write("subjectAltName = " + ",".join(sans) + "\n")
            _run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
            _run(["openssl", "req", "-config", cnf, "-new", "-key", key, "-out", csr, "-subj", subject])
            _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-out", crt,
                  "-days", "3650", "-set_serial", str(random.getrandbits(63)), "-extfile", ext])
            os.remove(csr)
            os.remove(ext)

        d = self.cluster_domain
        leaf("apiserver", "/CN=kube-apiserver", server=True, sans=[
            "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
            f"DNS:kubernetes.default.svc.{d}", "DNS:localhost", f"DNS:{self.node_name}",
            f"IP:{self.kubernetes_service_ip}", f"IP:{self.node_ip}", "IP:127.0.0.1"])
        leaf("admin", "/O=system:masters/CN=kubenode-admin")
        leaf("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
        leaf("controller-manager", "/CN=system:kube-controller-manager")
        leaf("scheduler", "/CN=system:kube-scheduler")
        leaf("kube-proxy", "/O=system:node-proxier/CN=system:kube-proxy")
        leaf("kubelet", f"/O=system:nodes/CN=system:node:{self.node_name}")
        leaf("front-proxy-client", "/CN=front-proxy-client")
        _run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
              "-out", os.path.join(pki, "sa.key")])
        _run(["openssl", "pkey", "-in", os.path.join(pki, "sa.key"), "-pubout", "-out", os.path.join(pki, "sa.pub")])
        for name, user in (("admin", "kubenode-admin"), ("controller-manager", "system:kube-controller-manager"),
                           ("scheduler", "system:kube-scheduler"), ("kube-proxy", "system:kube-proxy"),
                           ("kubelet", f"system:node:{self.node_name}")):
            self._write_kubeconfig(self.path(f"{name}.kubeconfig"), user, name)

    def _write_kubeconfig(self, path, user, cert):
        def b64(p):
            with open(p, "rb") as f:
                return base64.b64encode(f.read()).decode()
        cfg = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kubenode", "cluster": {
                "server": self.server, "certificate-authority-data": b64(self.path("pki", "ca.crt"))}}],
            "users": [{"name": user, "user": {
                "client-certificate-data": b64(self.path("pki", f"{cert}.crt")),
                "client-key-data": b64(self.path("pki", f"{cert}.key"))}}],
            "contexts": [{"name": "kubenode", "context": {"cluster": "kubenode", "user": user}}],
            "current-context": "kubenode",
        }
        with open(path, "w") as f:
            json.dump(cfg, f, indent=1)
        os.chmod(path, 0o600)

    # -- configuration files -----------------------------------------------------------------

    def _write_configs(self):
        w = self.workdir
        for d in ("containerd/root", "containerd/state", "containerd/opt", "runc", "cni/net.d", "cni/ipam",
                  "kubelet", "pod-logs", "dns", "pv", "images"):
            os.makedirs(self.path(d), exist_ok=True)
        with open(self.path("containerd", "config.toml"), "w") as f:
            f.write(f"""version = 2
root = "{w}/containerd/root"
state = "{w}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{self.ctr_address}"

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{w}/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE_IMAGE}"
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_unprivileged_ports = true
    enable_unprivileged_icmp = true
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "{self._bin('runc')}"
          Root = "{w}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{CNI_BIN_DIR}"
      conf_dir = "{w}/cni/net.d"
      max_conf_num = 1
""")
        with open(self.path("cni", "net.d", "10-kubenode.conflist"), "w") as f:
            json.dump({
                "cniVersion": "1.0.0", "name": CNI_NETWORK,
                "plugins": [
                    {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": True,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": self.path("cni", "ipam"),
                              "ranges": [[{"subnet": self.pod_cidr, "gateway": self.node_ip}]],
                              "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            }, f, indent=1)
        with open(self.path("resolv.conf"), "w") as f:
            f.write(f"nameserver {self.dns_ip}\n")
        with open(self.path("kubelet", "config.json"), "w") as f:
            json.dump({
                "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                "containerRuntimeEndpoint": f"unix://{self.ctr_address}",
                "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
                "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
                "podCIDR": self.pod_cidr,
                "address": self.node_ip, "port": 10250, "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
                "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False},
                                   "x509": {"clientCAFile": self.path("pki", "ca.crt")}},
                "authorization": {"mode": "AlwaysAllow"},
                "clusterDNS": [self.dns_ip], "clusterDomain": self.cluster_domain,
                "resolvConf": self.path("resolv.conf"),
                "serializeImagePulls": False,
                "podLogsDir": self.path("pod-logs"),
                "volumePluginDir": self.path("kubelet", "volume-plugins"),
                # Imported images cannot be pulled again: never garbage-collect them; and do not
                # evict pods because the shared disk is fuller than a real node's would be.
                "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                                 "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
                "protectKernelDefaults": False,
                "rotateCertificates": False, "serverTLSBootstrap": False,
            }, f, indent=1)
        with open(self.path("kube-proxy.json"), "w") as f:
            json.dump({
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": self.path("kube-proxy.kubeconfig")},
                "mode": "iptables", "clusterCIDR": self.pod_cidr, "hostnameOverride": self.node_name,
                "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
                # Leave the machine's conntrack sysctls alone.
                "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                              "tcpCloseWaitTimeout": "0s"},
                "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
                # NodePorts on the node IP only, not on every address of the machine.
                "nodePortAddresses": ["primary"],
            }, f, indent=1)
        with open(self.path("dns", "hosts"), "w") as f:
            f.write("")

    def _apiserver_argv(self, etcd_port):
        pki = self.path("pki")
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={self.node_ip}", f"--advertise-address={self.node_ip}",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={pki}/apiserver.crt", f"--tls-private-key-file={pki}/apiserver.key",
            f"--client-ca-file={pki}/ca.crt",
            f"--service-cluster-ip-range={self.service_cidr}",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            f"--service-account-issuer=https://kubernetes.default.svc.{self.cluster_domain}",
            "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer's front proxy (and no "missing content for CA bundle
            # client-ca::...requestheader-client-ca-file" errors in every component's log).
            f"--requestheader-client-ca-file={pki}/ca.crt", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
            f"--proxy-client-key-file={pki}/front-proxy-client.key",
            "--allow-privileged=true",
            "--profiling=false",
            f"--v={self.verbosity}",
        ]

    def _dnsmasq_argv(self):
        argv = [
            self._bin("dnsmasq"), "--keep-in-foreground", "--log-facility=-", "--conf-file=/dev/null",
            f"--pid-file={self.path('dns', 'dnsmasq.pid')}", "--user=root", "--group=root",
            "--no-hosts", "--no-resolv", "--no-poll", "--bind-interfaces",
            f"--listen-address={self.dns_ip}", "--port=53",
            f"--addn-hosts={self.path('dns', 'hosts')}",
            # Every name not in the hosts file is NXDOMAIN (nothing to forward to), so resolvers
            # go on through their search path.
            "--address=/#/",
        ]
        if self.dns_log_queries:
            argv.append("--log-queries")
        return argv

    def _build_pause_image(self):
        binary = compile_static(PAUSE_C, self.path("images", "pause"))
        with open(binary, "rb") as f:
            data = f.read()
        return write_oci_archive(self.path("images", "pause.tar"), PAUSE_IMAGE, {"pause": (data, 0o755)},
                                 ["/pause"], user="65535")

    # -- DNS updater -------------------------------------------------------------------------

    def dns_hosts(self, services, slices):
        """The addn-hosts file content for these Service and EndpointSlice objects."""
        d = self.cluster_domain
        records = set()
        headless = set()
        external = []
        for s in services:
            ns, name, spec = s["metadata"]["namespace"], s["metadata"]["name"], s.get("spec", {})
            fq = f"{name}.{ns}.svc.{d}"
            if spec.get("type") == "ExternalName":
                external.append((fq, spec.get("externalName", "").rstrip(".").lower()))
            elif spec.get("clusterIP") == "None":
                headless.add((ns, name))
            else:
                for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
                    if ip and ":" not in ip:
                        records.add((ip, fq))
        for es in slices:
            ns = es["metadata"]["namespace"]
            svc = es["metadata"].get("labels", {}).get("kubernetes.io/service-name")
            if (ns, svc) not in headless or es.get("addressType") != "IPv4":
                continue
            for ep in es.get("endpoints") or []:
                if ep.get("conditions", {}).get("ready") is False:
                    continue
                for ip in ep.get("addresses", []):
                    records.add((ip, f"{svc}.{ns}.svc.{d}"))
                    if ep.get("hostname"):
                        records.add((ip, f"{ep['hostname']}.{svc}.{ns}.svc.{d}"))
        by_name = {}
        for ip, name in records:
            by_name.setdefault(name, set()).add(ip)
        for fq, target in external:
            for ip in by_name.get(target, ()):
                records.add((ip, fq))
        return "".join(f"{ip} {name}\n" for ip, name in sorted(records, key=lambda r: (r[1], r[0])))

    def _dns_update(self):
        status, services = self.api("GET", "/api/v1/services", timeout=5)
        if status != 200:
            raise KubeNodeError(f"listing services: {status}")
        status, slices = self.api("GET", "/apis/discovery.k8s.io/v1/endpointslices", timeout=5)
        if status != 200:
            raise KubeNodeError(f"listing endpointslices: {status}")
        content = self.dns_hosts(services["items"], slices["items"])
        hosts = self.path("dns", "hosts")
        if content != self._dns_content:
            with open(hosts + ".tmp", "w") as f:
                f.write(content)
            os.replace(hosts + ".tmp", hosts)
            pid = self._recorded_alive("dnsmasq")
            if pid:
                os.kill(pid, signal.SIGHUP)
            self._dns_content = content

    def _dns_loop(self):
        while not self._dns_stop.is_set():
            try:
                self._dns_update()
            except Exception as e:  # noqa: BLE001 - keep going; say so at most every 30 s
                if time.monotonic() - self._dns_error_logged > 30 and not self._dns_stop.is_set():
                    self._dns_error_logged = time.monotonic()
                    self._log(f"DNS updater: {e}")
            self._dns_stop.wait(self.dns_interval)

    def _start_dns_updater(self):
        self._dns_content = None
        self._dns_stop.clear()
        self._dns_thread = threading.Thread(target=self._dns_loop, name="kubenode-dns", daemon=True)
        self._dns_thread.start()

    # ---------------------------------------------------------------------------------------
    # down

    def down(self):
        """Tears everything down (idempotent; also after a crash, from another process, or after
        a failed up()). Raises KubeNodeError listing what could not be cleaned."""
        if self._dns_thread is not None:
            self._dns_stop.set()
            self._dns_thread.join(timeout=15)
            self._dns_thread = None
        if self.workdir is None or not os.path.exists(os.path.join(self.workdir, STATE_FILE)):
            return
        try:
            lock = open(os.path.join(self.workdir, LOCK_FILE), "a")
        except FileNotFoundError:
            return  # torn down by another process meanwhile
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(self.workdir, STATE_FILE)):
                return  # another process tore it down while we waited
            with open(os.path.join(self.workdir, STATE_FILE)) as f:
                self._state = json.load(f)
            self._state["down_by"] = os.getpid()
            self._save_state()
            started = time.monotonic()
            problems = self._down()
            self._log(f"teardown took {time.monotonic() - started:.1f} s")
        finally:
            lock.close()
        if problems:
            raise KubeNodeError("teardown incomplete:\n  " + "\n  ".join(problems))

    def _down(self):
        problems = []

        def step(what, fn, *args):
            started = time.monotonic()
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - go on with the other steps
                problems.append(f"{what}: {e}")
                self._log(f"teardown: {what}: {e}")
            if time.monotonic() - started > 2:
                self._log(f"teardown: {what} took {time.monotonic() - started:.1f} s")

        self._log(f"tearing down the node in {self.workdir}")
        step("stopping the kubelet", self._kill, ["kubelet"], 15)
        container_ids = set()
        step("stopping the containers", self._stop_containers, container_ids)
        step("stopping containerd", self._kill, ["containerd"], 15)
        step("killing leftover container processes", self._kill_leftovers, container_ids)
        for group in CONTROL_PLANE_STOP_ORDER:
            # Everything is thrown away: no point waiting long for graceful shutdowns (the API
            # server's can take 10 s and more).
            step(f"stopping {', '.join(group)}", self._kill, group, 5)
        step("killing leftover component processes", self._kill_component_strays)
        step("removing shim sockets", self._remove_shim_sockets, container_ids)
        step("removing container cgroups", self._remove_cgroups, container_ids)
        step("unmounting", self._unmount_all)
        step("flushing conntrack entries", self._flush_conntrack)
        step("removing iptables chains", self._remove_iptables)
        step("removing the bridge", self._remove_links)
        step("removing empty nftables tables", self._remove_nft_tables)
        step("removing host files", self._remove_host_files, container_ids)
        step("restoring sysctls", self._restore_sysctls)
        if self.logs_dir:
            step(f"saving the logs in {self.logs_dir}", self._save_logs)
        if not problems or not _mounts_under(self.workdir):
            step("deleting the work directory", self._remove_workdir)
        else:
            problems.append(f"{self.workdir} kept: something is still mounted under it")
        self._procs = {}
        return problems

    def _stop_containers(self, container_ids):
        """SIGKILL and delete every task of our containerd (if it still runs); collects ids."""
        tasks_dir = self.path("containerd", "state", "io.containerd.runtime.v2.task")
        if os.path.isdir(tasks_dir):
            for ns in os.listdir(tasks_dir):
                container_ids.update((ns, c) for c in os.listdir(os.path.join(tasks_dir, ns)))
        if not self._recorded_alive("containerd"):
            return
        for ns in ("k8s.io", "default"):
            out = _run(["ctr", "--address", self.ctr_address, "-n", ns, "tasks", "ls", "-q"], check=False,
                       timeout=30)
            ids = out.stdout.split() if out.returncode == 0 else []
            container_ids.update((ns, c) for c in ids)
            for cid in ids:
                _run(["ctr", "--address", self.ctr_address, "-n", ns, "tasks", "kill", "--all", "--signal",
                      "SIGKILL", cid], check=False, timeout=30)
            deadline = time.monotonic() + 10
            pending = set(ids)
            while pending and time.monotonic() < deadline:
                for cid in list(pending):
                    r = _run(["ctr", "--address", self.ctr_address, "-n", ns, "tasks", "delete", cid],
                             check=False, timeout=30)
                    if r.returncode == 0 or "not found" in r.stderr:
                        pending.discard(cid)
                if pending:
                    time.sleep(0.3)
            for cid in pending:
                _run(["ctr", "--address", self.ctr_address, "-n", ns, "tasks", "delete", "--force", cid],
                     check=False, timeout=30)
        if container_ids:
            self._log(f"stopped {len(container_ids)} containers")

    def _kill_leftovers(self, container_ids):
        """SIGKILL our shims (their -address is our socket), runc calls with our root, and every
        process left in a cgroup of one of our containers."""
        ids = {cid for _, cid in container_ids}
        victims = []
        for pid in _all_pids():
            if pid == os.getpid():
                continue
            argv = _cmdline(pid)
            if argv and (os.path.basename(argv[0]).startswith("containerd-shim") and self.ctr_address in argv
                         or os.path.basename(argv[0]) == "runc" and self.path("runc") in argv):
                victims.append(pid)
                continue
            if ids:
                try:
                    with open(f"/proc/{pid}/cgroup") as f:
                        cg = f.read()
                except OSError:
                    continue
                if any(cid in cg for cid in ids):
                    victims.append(pid)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_proc_start_time(p) is not None for p in victims):
            time.sleep(0.1)
        if victims:
            self._log(f"killed {len(victims)} leftover container processes")

    def _kill_component_strays(self):
        """Component processes not recorded (e.g. the state file was written before a crash) but
        naming our work directory on their command line."""
        names = {"etcd", "containerd", "dnsmasq", *KUBE_COMPONENTS}
        strays = []
        for pid in _all_pids():
            argv = _cmdline(pid)
            if pid != os.getpid() and argv and os.path.basename(argv[0]) in names and \
                    any(self.workdir in a for a in argv):
                strays.append(pid)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if strays:
            self._log(f"killed stray processes {strays}")
            time.sleep(0.5)

    def _remove_shim_sockets(self, container_ids):
        # containerd 1.6 puts shim sockets in /run/containerd/s/<sha256(address/ns/id)>; a shim
        # removes its own when it exits normally, not when killed.
        for ns, cid in container_ids:
            digest = hashlib.sha256(os.path.join(self.ctr_address, ns, cid).encode()).hexdigest()
            for p in (os.path.join(SHIM_SOCKET_DIR, digest), os.path.join(SHIM_SOCKET_DIR, digest) + ".sock"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(p)

    def _remove_cgroups(self, container_ids):
        ids = {cid for _, cid in container_ids}
        if not ids:
            return
        for root, dirs, _ in os.walk("/sys/fs/cgroup", topdown=False):
            for d in dirs:
                if any(cid in d for cid in ids):
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(root, d))

    def _unmount_all(self):
        for attempt in range(5):
            mounts = _mounts_under(self.workdir)
            if not mounts:
                return
            for mp in reversed(mounts):
                if _run(["umount", mp], check=False, timeout=30).returncode != 0:
                    _run(["umount", "-l", mp], check=False, timeout=30)
            if attempt:
                time.sleep(0.5)
        left = _mounts_under(self.workdir)
        if left:
            raise KubeNodeError(f"still mounted: {left[:10]}")

    def _flush_conntrack(self):
        if not _which("conntrack"):
            return
        for args in (["-s", self.pod_cidr], ["-d", self.pod_cidr], ["--orig-dst", self.service_cidr]):
            _run(["conntrack", "-D", *args], check=False, timeout=30)

    def _iptables_tools(self):
        variant = self._state.get("iptables", "iptables")
        suffix = "" if variant == "iptables" else "-" + variant.split("-", 1)[1]
        return [(f"iptables{suffix}", f"iptables{suffix}-save"), (f"ip6tables{suffix}", f"ip6tables{suffix}-save")]

    def _remove_iptables(self):
        removed = 0
        for cmd, save in self._iptables_tools():
            if not _which(cmd) or not _which(save):
                continue
            out = _run([save], check=False, timeout=60)
            if out.returncode != 0:
                continue
            table, chains, rules = None, {}, {}
            for line in out.stdout.splitlines():
                if line.startswith("*"):
                    table = line[1:].strip()
                    chains[table], rules[table] = [], []
                elif line.startswith(":") and table:
                    chains[table].append(line[1:].split()[0])
                elif line.startswith("-A ") and table:
                    rules[table].append(line)
            for table in chains:
                ours = [c for c in chains[table] if c.startswith(("KUBE-", "CNI-"))]
                if not ours:
                    continue
                for rule in rules[table]:
                    parts = shlex.split(rule)
                    if parts[1] in ours:
                        continue
                    jumps = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p in ("-j", "-g", "--jump", "--goto")]
                    if any(j in ours for j in jumps):
                        _run([cmd, "-w", "-t", table, "-D", parts[1], *parts[2:]], check=False)
                for c in ours:
                    _run([cmd, "-w", "-t", table, "-F", c], check=False)
                for c in ours:
                    if _run([cmd, "-w", "-t", table, "-X", c], check=False).returncode == 0:
                        removed += 1
            left = [line for line in _run([save], check=False).stdout.splitlines()
                    if "KUBE-" in line or "CNI-" in line]
            if left:
                raise KubeNodeError(f"{cmd}: still there: {left[:5]}")
        if removed:
            self._log(f"removed {removed} iptables chains")

    def _remove_links(self):
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            out = _run(["ip", "-o", "link", "show", "master", self.bridge], check=False).stdout
            for line in out.splitlines():
                name = line.split(":")[1].strip().split("@")[0]
                _run(["ip", "link", "delete", name], check=False)
            if self._state.get("bridge_created"):
                _run(["ip", "link", "delete", self.bridge])

    def _nft_tables(self):
        if not _which("nft"):
            return None
        out = _run(["nft", "list", "tables"], check=False)
        return sorted(out.stdout.split("\n")) if out.returncode == 0 else None

    def _remove_nft_tables(self):
        # iptables-nft creates the nftables tables it needs and never deletes them; delete those
        # that did not exist before up() and are empty (only base chains) again.
        before = self._state.get("nft_tables")
        now = self._nft_tables()
        if before is None or now is None:
            return
        for line in now:
            if not line.startswith("table ") or line in before:
                continue
            _, family, name = line.split()
            listing = _run(["nft", "list", "table", family, name], check=False).stdout
            body = [x.strip() for x in listing.splitlines()]
            if all(x == "" or x == "}" or x.startswith(("table ", "chain ", "type ", "policy ")) for x in body):
                _run(["nft", "delete", "table", family, name], check=False)

    def _remove_host_files(self, container_ids):
        # libcni's result cache: <network>-<sandbox id>-<ifname>, for our network and for the
        # loopback network containerd adds to every sandbox (CNI DEL never ran: tasks were killed).
        ids = {cid for _, cid in container_ids}
        if os.path.isdir(CNI_CACHE_DIR):
            for name in os.listdir(CNI_CACHE_DIR):
                if name.startswith(CNI_NETWORK + "-") or \
                        name.startswith("cni-loopback-") and name[len("cni-loopback-"):].rsplit("-", 1)[0] in ids:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(CNI_CACHE_DIR, name))
        if os.path.isdir(CONTAINER_LOG_LINKS):
            for name in os.listdir(CONTAINER_LOG_LINKS):
                p = os.path.join(CONTAINER_LOG_LINKS, name)
                with contextlib.suppress(OSError):
                    if os.path.islink(p) and os.readlink(p).startswith(self.workdir + "/"):
                        os.remove(p)
        # kubectl's discovery cache of this server (it would outlive the cluster by hours).
        for home in {os.path.expanduser("~"), "/root"}:
            cache = os.path.join(home, ".kube", "cache", "discovery", f"{self.node_ip}_{self.apiserver_port}")
            if os.path.isdir(cache) and not os.path.islink(cache):
                shutil.rmtree(cache, ignore_errors=True)
        for p in self._state.get("host_paths_absent", []):  # deepest first (HOST_PATHS order)
            with contextlib.suppress(OSError):
                if p in HOST_TREES and os.path.isdir(p) and not _mounts_under(p):
                    shutil.rmtree(p)
                elif os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)  # only if empty
                elif p == "/run/xtables.lock" and os.path.isfile(p):
                    os.remove(p)

    def _restore_sysctls(self):
        for name, value in self._state.get("sysctls", {}).items():
            if _read_sysctl(name) not in (None, value):
                with contextlib.suppress(OSError):
                    _write_sysctl(name, value)

    def _save_logs(self):
        """Copies the components' logs and the pods' logs (pod-logs/) into logs_dir."""
        os.makedirs(self.logs_dir, exist_ok=True)
        for name in os.listdir(self.workdir):
            if name.endswith(".log"):
                shutil.copy2(self.path(name), os.path.join(self.logs_dir, name))
        if os.path.isdir(self.path("pod-logs")):
            shutil.copytree(self.path("pod-logs"), os.path.join(self.logs_dir, "pod-logs"), dirs_exist_ok=True)
        self._log(f"logs saved in {self.logs_dir}")

    def _remove_workdir(self):
        if _mounts_under(self.workdir):
            raise KubeNodeError(f"not deleting {self.workdir}: still mounted: {_mounts_under(self.workdir)[:5]}")
        shutil.rmtree(self.workdir)
        self._log(f"deleted {self.workdir}")


# ---------------------------------------------------------------------------------------------
# CLI


def _cli_up(args):
    node = Node(kube_bin=args.kube_bin, workdir=args.workdir, timeout=args.timeout,
                verbosity=args.v, dns_log_queries=args.log_dns_queries, logs_dir=args.logs_dir)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # Explicitly: a background job of a non-interactive shell starts with SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    rc = 0
    try:
        node.up()
        print(f"kubeconfig: {node.kubeconfig}")
        print(f"export KUBECONFIG={node.kubeconfig}", flush=True)
        _stderr_log(f"up in {node.up_seconds:.1f} s (workdir {node.workdir}); Ctrl-C or SIGTERM tears it down")

        def torn_down_elsewhere():
            try:
                with open(node.path(STATE_FILE)) as f:
                    return json.load(f).get("down_by") not in (None, os.getpid())
            except (OSError, ValueError):
                return True

        while True:
            time.sleep(1)
            try:
                node._check_alive()
            except KubeNodeError:
                if not torn_down_elsewhere():
                    raise
            if torn_down_elsewhere():
                _stderr_log("the node is being torn down by another process (down --workdir)")
                node.down()  # waits for that teardown to finish
                return 0
    except KeyboardInterrupt:
        _stderr_log("tearing down")
    except KubeNodeError as e:
        _stderr_log(str(e))
        rc = 1
    finally:
        # An ordered teardown: do not let a second Ctrl-C cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            node.down()
        except KubeNodeError as e:
            _stderr_log(str(e))
            rc = 1
    return rc


def _cli_down(args):
    workdir = os.path.realpath(args.workdir)
    if not os.path.exists(os.path.join(workdir, STATE_FILE)):
        if os.path.isdir(workdir) and os.listdir(workdir):
            _stderr_log(f"{workdir} has no {STATE_FILE}: not a kubenode work directory; nothing done")
            return 1
        _stderr_log(f"nothing to tear down in {workdir}")
        with contextlib.suppress(OSError):
            os.rmdir(workdir)
        return 0
    try:
        Node.attach(workdir, logs_dir=args.logs_dir).down()
    except KubeNodeError as e:
        _stderr_log(str(e))
        return 1
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kubenode.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring a node up; tear it down on Ctrl-C/SIGTERM")
    up.add_argument("--kube-bin", default=DEFAULT_KUBE_BIN, help="directory of the Kubernetes binaries")
    up.add_argument("--workdir", help="work directory (default: a new /tmp/kubenode-*)")
    up.add_argument("--timeout", type=float, default=120, help="bound of each wait, seconds")
    up.add_argument("--v", type=int, default=1, help="Kubernetes components' log verbosity")
    up.add_argument("--log-dns-queries", action="store_true", help="dnsmasq logs every query")
    up.add_argument("--logs-dir", help="at teardown, copy the component and pod logs here")
    down = sub.add_parser("down", help="tear down the node of a previous `up` (idempotent)")
    down.add_argument("--workdir", required=True)
    down.add_argument("--logs-dir", help="copy the component and pod logs here before deleting the workdir")
    args = parser.parse_args(argv)
    return _cli_up(args) if args.command == "up" else _cli_down(args)


if __name__ == "__main__":
    sys.exit(main())
