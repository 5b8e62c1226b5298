//! Trunks resolved with DNS (RFC 3263) against a DNS server the test starts: dnsmasq on
//! loopback serving NAPTR, SRV and A records for `carrier.waihu.test`.
//!
//! - `waihu trunks resolve` prints the targets in order with their record chain, and a
//!   clear NXDOMAIN error for a name that does not exist.
//! - A live campaign whose only trunk is `proxy: carrier.waihu.test`: its SRV records
//!   point at a SIPp UAS answering 503 (priority 10) and one answering 200 (priority 20);
//!   every call completes, failing over from the first target to the second within the
//!   same trunk, each callee attempted once.
//!
//! Needs dnsmasq (Debian dnsmasq-base) and SIPp (scripts/deps/sip.apt), espeak-ng and the
//! Whisper tiny.en model (scripts/setup.sh). A missing peer skips, and fails under `CI`.
//! Ports: 26500-26549 (SIP); the DNS port is picked free.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use waihu_testkit::dnsmasq::Dnsmasq;
use waihu_testkit::{have_peer, models_dir, Peer};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn waihu_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_waihu"));
    c.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env_remove("WAIHU_DNS_SERVER")
        .env("WAIHU_MODELS_DIR", models_dir());
    c
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = waihu_cmd(dir, args).output().expect("run waihu");
    assert!(
        out.status.success(),
        "waihu {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

fn dns(bad: u16, good: u16) -> Option<Dnsmasq> {
    Dnsmasq::start(
        "waihu.test",
        &[
            "--naptr-record=carrier.waihu.test,10,50,s,SIP+D2U,,_sip._udp.carrier.waihu.test",
            &format!("--srv-host=_sip._udp.carrier.waihu.test,bad.waihu.test,{bad},10,1"),
            &format!("--srv-host=_sip._udp.carrier.waihu.test,good.waihu.test,{good},20,1"),
            "--host-record=bad.waihu.test,127.0.0.1",
            "--host-record=good.waihu.test,127.0.0.1",
        ],
    )
}

fn wait_port_udp(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on UDP {port}");
}

/// A SIPp UAS: `answer` rings, answers and hangs up after 500 ms; otherwise 503 to
/// everything. Every message is traced to `sipp-<port>-messages.log`.
fn sipp_uas(dir: &Path, port: u16, media_port: u16, answer: bool) -> Peer {
    let reply = |status: &str, sdp: bool| {
        let body = if sdp {
            "Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=callee 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
        } else {
            "Content-Length: 0\n"
        };
        format!(
            "<send{}><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:callee@[local_ip]:[local_port];transport=[transport]>\n{body}\n]]></send>\n",
            if status.starts_with("200") { " retrans=\"500\"" } else { "" }
        )
    };
    let (keep, flow) = if answer {
        (
            "<action>\n<ereg regexp=\".*\" search_in=\"hdr\" header=\"From:\" assign_to=\"from\"/>\n\
             <ereg regexp=\"[^;]*\" search_in=\"hdr\" header=\"To:\" assign_to=\"to\"/>\n</action>\n"
                .to_string(),
            format!(
                "{}{}<recv request=\"ACK\" crlf=\"true\"/>\n<pause milliseconds=\"500\"/>\n\
                 <send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: [$to];tag=[pid]SIPpTag01[call_number]\nTo: [$from]\nCall-ID: [call_id]\nCSeq: 1 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n\
                 <recv response=\"200\" crlf=\"true\"/>\n",
                reply("180 Ringing", false),
                reply("200 OK", true)
            ),
        )
    } else {
        (
            String::new(),
            format!(
                "{}<recv request=\"ACK\" crlf=\"true\"/>\n",
                reply("503 Service Unavailable", false)
            ),
        )
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"callee\">\n\
         <recv request=\"INVITE\" crlf=\"true\">\n{keep}</recv>\n{flow}</scenario>\n"
    );
    let file = dir.join(format!("uas-{port}.xml"));
    std::fs::write(&file, xml).unwrap();
    let peer = Peer(
        Command::new("timeout")
            .arg("300")
            .arg("sipp")
            .args([
                "-sf",
                file.to_str().unwrap(),
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                &media_port.to_string(),
                "-nostdin",
                "-trace_msg",
                "-message_file",
                dir.join(format!("sipp-{port}-messages.log"))
                    .to_str()
                    .unwrap(),
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp"),
    );
    wait_port_udp(port);
    peer
}

fn invites(dir: &Path, port: u16) -> usize {
    std::fs::read_to_string(dir.join(format!("sipp-{port}-messages.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("INVITE sip:"))
        .count()
}

fn trunks_file(dir: &Path, dns: &Dnsmasq) -> PathBuf {
    let path = dir.join("trunks.yaml");
    std::fs::write(
        &path,
        format!(
            "trunks:\n  - {{name: carrier, proxy: carrier.waihu.test, dns_server: '{}', channels: 4, cps: 20}}\n  - {{name: literal, proxy: 127.0.0.1, transport: tcp, channels: 1, cps: 1}}\n",
            dns.addr
        ),
    )
    .unwrap();
    path
}

#[test]
fn trunks_resolve_prints_the_record_chain_and_nxdomain() {
    let (bad, good) = (26500u16, 26510u16);
    let Some(dns) = dns(bad, good) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let f = trunks_file(d, &dns);
    let out = ok(d, &["trunks", "resolve", f.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let t = &v["trunks"][0]["targets"];
    assert_eq!(t[0]["addr"], format!("127.0.0.1:{bad}"), "{v}");
    assert_eq!(t[1]["addr"], format!("127.0.0.1:{good}"), "{v}");
    assert_eq!(t[0]["transport"], "udp");
    let types: Vec<&str> = t[0]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["NAPTR", "SRV", "ADDRESS"], "{v}");
    assert_eq!(t[0]["chain"][1]["priority"], 10);
    // The IP literal: no DNS, port 5060, the configured transport.
    let lit = &v["trunks"][1]["targets"][0];
    assert_eq!(
        (lit["addr"].as_str(), lit["transport"].as_str()),
        (Some("127.0.0.1:5060"), Some("tcp"))
    );
    assert!(v["trunks"][1]["ttl_s"].is_null(), "{v}");
    // Human output, through --dns-server (overrides the file's dns_server).
    let text = ok(
        d,
        &[
            "trunks",
            "resolve",
            f.to_str().unwrap(),
            "--dns-server",
            &dns.addr.to_string(),
        ],
    );
    assert!(
        text.contains(&format!(
            "SRV _sip._udp.carrier.waihu.test 10 1 {bad} bad.waihu.test."
        )),
        "{text}"
    );
    assert!(text.contains("A bad.waihu.test 127.0.0.1"), "{text}");
    // A name that does not exist.
    let nx = d.join("nx.yaml");
    std::fs::write(
        &nx,
        "trunks:\n  - {name: gone, proxy: nope.waihu.test, channels: 1, cps: 1}\n",
    )
    .unwrap();
    let out = waihu_cmd(d, &["trunks", "resolve", nx.to_str().unwrap()])
        .env("WAIHU_DNS_SERVER", dns.addr.to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "trunk gone: resolving nope.waihu.test: nope.waihu.test: no such domain (NXDOMAIN)"
        ),
        "{text}"
    );
}

fn import(dir: &Path, n: usize, base: u64) -> Vec<String> {
    let mut csv = String::from(
        "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
    );
    let mut phones = Vec::new();
    for i in 0..n {
        let phone = format!("+1212555{:04}", base + i as u64);
        csv.push_str(&format!(
            "Customer {i},{phone},America/New_York,US{i:04},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
            10 + i
        ));
        phones.push(phone);
    }
    let path = dir.join("customers.csv");
    std::fs::write(&path, csv).unwrap();
    ok(
        dir,
        &[
            "customers",
            "import",
            path.to_str().unwrap(),
            "--region",
            "US",
        ],
    );
    phones
}

#[test]
fn a_trunk_named_by_dns_fails_over_across_its_srv_targets() {
    let (bad, good) = (26520u16, 26530u16);
    if !have_peer("sipp") {
        return;
    }
    let model = models_dir().join("whisper-tiny.en/model.bin");
    assert!(
        model.exists(),
        "Whisper tiny.en missing at {} — run scripts/setup.sh",
        model.display()
    );
    let Some(dns) = dns(bad, good) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let _bad = sipp_uas(d, bad, 26522, false);
    let _good = sipp_uas(d, good, 26532, true);
    let trunks = d.join("trunks.yaml");
    std::fs::write(
        &trunks,
        format!(
            "trunks:\n  - {{name: carrier, proxy: carrier.waihu.test, dns_server: '{}', channels: 4, cps: 20}}\n",
            dns.addr
        ),
    )
    .unwrap();
    let phones = import(d, 4, 300);
    let camp = d.join("dns.yaml");
    std::fs::write(
        &camp,
        std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml"))
            .unwrap()
            .replace("name: order-confirmation-en", "name: dns"),
    )
    .unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let out = ok(
        d,
        &[
            "run",
            "--campaign",
            camp.to_str().unwrap(),
            "--script",
            script.to_str().unwrap(),
            "--var",
            "shop=BestBuy Online",
            "--clock-start",
            "2026-11-25T14:30:00Z",
            "--hours",
            "8",
            "--json",
            "--trunks",
            trunks.to_str().unwrap(),
            "--concurrency",
            "2",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let calls = v["summary"]["calls"].as_array().unwrap();
    let mut called: Vec<&str> = calls.iter().map(|c| c["phone"].as_str().unwrap()).collect();
    called.sort();
    assert_eq!(called, phones, "each callee called once: {v}");
    for c in calls {
        assert_eq!(c["outcome"], "answered", "{c}");
    }
    assert_eq!(v["summary"]["attempts"], phones.len(), "{v}");
    // The priority-10 target was tried (and refused) before the priority-20 one took
    // every call; a target that failed is tried last for 30 s, so not every call
    // pays for it.
    let (to_bad, to_good) = (invites(d, bad), invites(d, good));
    assert!(to_bad >= 1, "the first SRV target was tried: {to_bad}");
    // Two calls at once: at most the first two meet it.
    assert!(to_bad <= 2, "the failed target was put last: {to_bad}");
    assert!(
        to_good >= phones.len(),
        "every call completed on the second target: {to_good}"
    );
}
