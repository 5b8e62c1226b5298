//! Trunks against real peers on loopback, through the real binary:
//!
//! - Kamailio as the carrier over SIP/TLS (its `tls` module with a certificate from a test
//!   CA the test makes; waihu verifies it by name): registrar with digest auth (401 on
//!   REGISTER, 407 on INVITE), proxy to SIPp callees behind it. `waihu run` registers,
//!   places a campaign's calls through it, Kamailio is restarted mid-campaign (its
//!   location table is lost), waihu registers again (the new Kamailio routes a request to
//!   waihu's binding) and the remaining calls go through.
//! - Failover: two trunks, the first a SIPp UAS answering 503 to everything; every call
//!   completes on the second, each callee attempted (and stored) once, and the first trunk
//!   is shown down.
//!
//! - DNS (RFC 3263) against dnsmasq on loopback serving NAPTR, SRV and A records for
//!   `carrier.waihu.test`: `waihu trunks resolve` prints the targets in order with their
//!   record chain (and a clear NXDOMAIN error); a live campaign whose only trunk is that
//!   name, its SRV records pointing at a SIPp answering 503 (priority 10) and one answering
//!   200 (priority 20), completes every call on the second target, each callee once.
//!
//! Needs Kamailio, SIPp and dnsmasq (scripts/deps/sip.apt), espeak-ng and the Whisper
//! tiny.en model (scripts/setup.sh). A missing peer skips, and fails under `CI`.
//! Ports: 26400-26549 (the DNS port is picked free).
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        .env("WAIHU_MODELS_DIR", models_dir())
        .env("WAIHU_TRUNK_PASSWORD", "s3cret");
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

fn wait_port_udp(port: u16) {
    for _ in 0..200 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on UDP {port}");
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A SIPp UAS: `answer` rings, answers and hangs up (BYE) after `hold_ms`; otherwise it
/// refuses every call with 503. `proxied`: calls come through a record-routing proxy
/// (the BYE follows the route set back through it).
fn sipp_uas(
    dir: &Path,
    port: u16,
    media_port: u16,
    answer: bool,
    hold_ms: u32,
    proxied: bool,
    identity: bool,
) -> Peer {
    let rr = if proxied {
        "[last_Record-Route:]\n"
    } else {
        ""
    };
    let routes = if proxied { "[routes]\n" } else { "" };
    let reply = |status: &str, sdp: bool| {
        let body = if sdp {
            "Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=callee 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\n"
        } else {
            "Content-Length: 0\n"
        };
        format!(
            "<send{}><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag01[call_number]\n[last_Call-ID:]\n[last_CSeq:]\n{rr}Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>\n{body}\n]]></send>\n",
            if status.starts_with("200") { " retrans=\"500\"" } else { "" }
        )
    };
    let flow = if answer {
        format!(
            "{}{}<recv request=\"ACK\" crlf=\"true\"/>\n<pause milliseconds=\"{hold_ms}\"/>\n\
             <send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n{routes}From: [$to];tag=[pid]SIPpTag01[call_number]\nTo: [$from]\nCall-ID: [call_id]\nCSeq: 1 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n\
             <recv response=\"200\" crlf=\"true\"/>\n",
            reply("180 Ringing", false),
            reply("200 OK", true)
        )
    } else {
        format!(
            "{}<recv request=\"ACK\" crlf=\"true\"/>\n",
            reply("503 Service Unavailable", false)
        )
    };
    // SIPp refuses variables it assigns but never uses: only the answering callee keeps them.
    // With `identity`, an INVITE without a P-Asserted-Identity is a failed call
    // (`check_it`), and every INVITE's From user and asserted identity are logged.
    let identity_check = if identity {
        "<ereg regexp=\"sip:([^@]*)@\" search_in=\"hdr\" header=\"P-Asserted-Identity:\" check_it=\"true\" assign_to=\"pai,paiuser\"/>\n\
         <ereg regexp=\"sip:([^@]*)@\" search_in=\"hdr\" header=\"From:\" check_it=\"true\" assign_to=\"fromuri,fromuser\"/>\n\
         <ereg regexp=\"[a-z][a-z;]*\" search_in=\"hdr\" header=\"Privacy:\" check_it=\"true\" assign_to=\"privacy\"/>\n\
         <log message=\"identity from=[$fromuser] pai=[$paiuser] privacy=[$privacy] uri=[$fromuri][$pai]\"/>\n"
    } else {
        ""
    };
    let keep = if answer {
        format!(
            "<action>\n<ereg regexp=\".*\" search_in=\"hdr\" header=\"From:\" assign_to=\"from\"/>\n\
             <ereg regexp=\"[^;]*\" search_in=\"hdr\" header=\"To:\" assign_to=\"to\"/>\n{identity_check}</action>\n"
        )
    } else {
        String::new()
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"callee\">\n\
         <recv request=\"INVITE\" rrs=\"true\" crlf=\"true\">\n{keep}</recv>\n{flow}</scenario>\n"
    );
    let file = dir.join(format!("uas-{port}.xml"));
    std::fs::write(&file, xml).unwrap();
    let peer = Peer(
        Command::new("sipp")
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
                "-trace_err",
                "-trace_logs",
                "-log_file",
                dir.join(format!("sipp-{port}-identity.log"))
                    .to_str()
                    .unwrap(),
                "-error_file",
                dir.join(format!("sipp-{port}-errors.log"))
                    .to_str()
                    .unwrap(),
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

/// Registrar + authenticating proxy (`waihu_testkit::kamailio`): REGISTER and INVITE
/// must carry digest credentials (password `s3cret`); an INVITE goes to the callees at
/// `callee`; other requests are routed to registered bindings. SIP over TLS on `port + 1`
/// with the certificate [`waihu_testkit::kamailio::make_test_ca`] left in `dir`.
fn kamailio(dir: &Path, port: u16, callee: u16) -> waihu_testkit::kamailio::Kamailio {
    waihu_testkit::kamailio::Kamailio::start(
        dir,
        &waihu_testkit::kamailio::Config {
            port,
            secret: "s3cret".into(),
            invite_to: Some(callee),
            min_expires: Some(5),
            tls: Some(waihu_testkit::kamailio::TlsListen {
                port: port + 1,
                cert: dir.join("server.pem"),
                key: dir.join("server.key"),
            }),
        },
    )
    .expect("start kamailio")
}

/// Whether the registrar holds a binding for `user`: an OPTIONS to `user` through it is
/// routed to the binding (waihu answers 200) instead of 404.
fn binding_answers(dir: &Path, registrar: u16, user: &str) -> bool {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"options\">\n\
         <send retrans=\"500\"><![CDATA[\nOPTIONS sip:{user}@127.0.0.1:{registrar} SIP/2.0\n\
         Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         From: <sip:probe@[local_ip]:[local_port]>;tag=[pid]probe[call_number]\n\
         To: <sip:{user}@127.0.0.1:{registrar}>\nCall-ID: [call_id]\nCSeq: 1 OPTIONS\n\
         Max-Forwards: 70\nContent-Length: 0\n\n]]></send>\n\
         <recv response=\"200\"/>\n</scenario>\n"
    );
    let file = dir.join("options.xml");
    std::fs::write(&file, xml).unwrap();
    Command::new("sipp")
        .args([
            "-sf",
            file.to_str().unwrap(),
            &format!("127.0.0.1:{registrar}"),
            "-i",
            "127.0.0.1",
            "-p",
            "26490",
            "-m",
            "1",
            "-timeout",
            "3s",
            "-timeout_error",
            "-nostdin",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Customers in New York (the clock is set to a Wednesday morning there).
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

fn campaign(dir: &Path, name: &str, trunks: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml"))
        .unwrap()
        .replace("name: order-confirmation-en", &format!("name: {name}"))
        .replace(
            "trunks:\n  - {name: loopback, channels: 20, cps: 10}\n",
            trunks,
        );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run_args<'a>(campaign: &'a str, script: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "--campaign",
        campaign,
        "--script",
        script,
        "--var",
        "shop=BestBuy Online",
        "--clock-start",
        "2026-11-25T14:30:00Z",
        "--hours",
        "8",
        "--json",
    ];
    v.extend_from_slice(extra);
    v
}

fn status(dir: &Path) -> Option<serde_json::Value> {
    let out = waihu_cmd(dir, &["trunks", "status", "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

/// Attempt-started events per phone index, from the store's event log.
fn attempts_started(dir: &Path) -> usize {
    let out = ok(
        dir,
        &[
            "events",
            "list",
            "--type",
            "attempt_started",
            "--limit",
            "1000",
            "--json",
        ],
    );
    out.lines().filter(|l| !l.trim().is_empty()).count()
}

fn have_models() -> bool {
    let model = models_dir().join("whisper-tiny.en/model.bin");
    assert!(
        model.exists(),
        "Whisper tiny.en missing at {} — run scripts/setup.sh",
        model.display()
    );
    true
}

#[test]
fn registers_with_kamailio_reregisters_after_restart_and_calls_through_it() {
    if !have_peer("kamailio") || !have_peer("sipp") || !have_peer("openssl") || !have_models() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (kam_port, callee_port) = (26400u16, 26410u16);
    let _callees = sipp_uas(d, callee_port, 26412, true, 1200, true, false);
    waihu_testkit::kamailio::make_test_ca(d, &["carrier.test"]).expect("test CA");
    let kam = kamailio(d, kam_port, callee_port);

    std::fs::write(
        d.join("trunks.yaml"),
        format!(
            "trunks:\n  - name: carrier\n    proxy: sips:127.0.0.1:{}\n    tls_ca: ca.pem\n    tls_server_name: carrier.test\n    username: waihu\n    password_env: WAIHU_TRUNK_PASSWORD\n    register: true\n    expires: 10\n    channels: 1\n    cps: 5\n",
            kam_port + 1
        ),
    )
    .unwrap();
    let checked = ok(
        d,
        &["trunks", "check", d.join("trunks.yaml").to_str().unwrap()],
    );
    assert!(checked.contains("1 trunk(s) OK"), "{checked}");
    let phones = import(d, 10, 100);
    let camp = campaign(d, "via-kamailio", "trunks_file: trunks.yaml\n");
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let (camp, script) = (camp.to_str().unwrap(), script.to_str().unwrap());
    let run = waihu_cmd(d, &run_args(camp, script, &["--concurrency", "1"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start waihu run");
    let run = RunGuard(Some(run));

    // Registered (401 → digest → 200) and the registrar routes to the binding.
    wait_until(Duration::from_secs(60), "the trunk to register", || {
        status(d).is_some_and(|s| s["trunks"][0]["registration"] == "registered")
    });
    assert!(
        binding_answers(d, kam_port, "waihu"),
        "no binding at Kamailio"
    );
    // The node reports its ASR queue beside the trunks (the live wall's `asr_queue`).
    let st = status(d).unwrap();
    assert!(st["asr"]["slots"].as_u64() >= Some(1), "{st}");
    assert!(st["asr"]["waiting"].is_u64(), "{st}");
    wait_until(
        Duration::from_secs(60),
        "two calls through Kamailio",
        || status(d).is_some_and(|s| s["trunks"][0]["calls"].as_u64() >= Some(3)),
    );

    // Restart Kamailio: its location table is gone.
    let regs_of = || {
        status(d).unwrap()["trunks"][0]["registrations"]
            .as_u64()
            .unwrap()
    };
    let regs = regs_of();
    drop(kam);
    let kam = kamailio(d, kam_port, callee_port);
    let bound = binding_answers(d, kam_port, "waihu");
    if regs_of() == regs {
        assert!(!bound, "a fresh Kamailio knows no binding");
    }
    // The refresh (half of 10 s) registers waihu with the new Kamailio: challenged again,
    // answered, bound.
    wait_until(Duration::from_secs(15), "waihu to register again", || {
        status(d).is_some_and(|s| s["trunks"][0]["registrations"].as_u64() > Some(regs))
    });
    assert!(
        binding_answers(d, kam_port, "waihu"),
        "not registered after the restart"
    );

    let out = run.wait();
    let v = summary(&out);
    let calls = v["summary"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), phones.len(), "{v}");
    for c in calls {
        assert_eq!(c["outcome"], "answered", "{c}");
    }
    assert_eq!(attempts_started(d), phones.len());
    drop(kam);
}

/// Waits for `waihu run` (bounded) and returns its stdout; kills it when dropped early.
struct RunGuard(Option<Child>);
impl RunGuard {
    fn wait(mut self) -> String {
        let mut child = self.0.take().unwrap();
        let until = Instant::now() + Duration::from_secs(240);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("waihu run did not finish in 240 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "waihu run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}
impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_trunk_answering_503_fails_over_to_the_next_for_the_same_attempt() {
    if !have_peer("sipp") || !have_models() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (bad, good) = (26430u16, 26440u16);
    let _bad = sipp_uas(d, bad, 26432, false, 0, false, false);
    let _good = sipp_uas(d, good, 26442, true, 500, false, true);
    // The planner prefers the trunk with the most free channels: the broken one. The
    // backup wants the caller ID asserted (RFC 3325) and withheld from the callee.
    std::fs::write(
        d.join("trunks.yaml"),
        format!(
            "trunks:\n  - {{name: broken, proxy: 127.0.0.1:{bad}, channels: 20, cps: 20, weight: 5}}\n  - {{name: backup, proxy: 127.0.0.1:{good}, channels: 4, cps: 20, weight: 1, asserted_identity: true, privacy: id}}\n"
        ),
    )
    .unwrap();
    let phones = import(d, 6, 200);
    let camp = campaign(
        d,
        "failover",
        "trunks:\n  - {name: loopback, channels: 20, cps: 10}\n",
    );
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let trunks = d.join("trunks.yaml");
    let out = ok(
        d,
        &run_args(
            camp.to_str().unwrap(),
            script.to_str().unwrap(),
            &["--trunks", trunks.to_str().unwrap(), "--concurrency", "3"],
        ),
    );
    let v = summary(&out);
    let calls = v["summary"]["calls"].as_array().unwrap();
    let mut called: Vec<&str> = calls.iter().map(|c| c["phone"].as_str().unwrap()).collect();
    called.sort();
    assert_eq!(called, phones, "each callee called once: {v}");
    for c in calls {
        assert_eq!(c["outcome"], "answered", "{c}");
    }
    assert_eq!(v["summary"]["attempts"], phones.len(), "{v}");
    assert_eq!(attempts_started(d), phones.len(), "stored once per callee");
    let s = status(d).expect("trunk status written");
    let t = &s["trunks"];
    assert_eq!(t[0]["name"], "broken");
    assert!(t[0]["failures"].as_u64() >= Some(3), "{s}");
    // Three failures in a row took it out (5 s back-off; the run is over well before).
    assert_eq!(t[0]["state"], "down", "{s}");
    assert_eq!(t[1]["calls"], phones.len(), "{s}");
    assert_eq!(t[1]["failures"], 0, "{s}");
    // Caller ID on the wire: every INVITE the backup trunk saw carried the planner's
    // caller ID in From and in P-Asserted-Identity, with `Privacy: id`.
    let log = std::fs::read_to_string(d.join(format!("sipp-{good}-identity.log")))
        .expect("sipp identity log");
    let seen: Vec<&str> = log.lines().filter(|l| l.starts_with("identity ")).collect();
    assert_eq!(seen.len(), phones.len(), "{log}");
    let started = ok(
        d,
        &[
            "events",
            "list",
            "--type",
            "attempt_started",
            "--limit",
            "1000",
            "--json",
        ],
    );
    for l in started.lines().filter(|l| !l.trim().is_empty()) {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        let cid = e["kind"]["caller_id"]
            .as_str()
            .or_else(|| e["caller_id"].as_str())
            .unwrap_or_else(|| panic!("attempt without a caller ID: {e}"));
        assert_eq!(cid, "+12125550100", "{e}");
    }
    for l in &seen {
        assert!(
            l.starts_with("identity from=+12125550100 pai=+12125550100 privacy=id "),
            "{l}"
        );
    }
}

#[test]
fn trunks_check_reports_positions_and_refuses_inline_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let f = d.join("bad.yaml");
    std::fs::write(
        &f,
        "trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 2\n    cps: 1\n    password: hunter2\n",
    )
    .unwrap();
    let out = waihu_cmd(d, &["trunks", "check", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:6:5: trunks[0].password: an inline password is refused",
            f.display()
        )),
        "{err}"
    );
    std::fs::write(
        &f,
        "trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    transport: quic\n    channels: 2\n    cps: 1\n",
    )
    .unwrap();
    let out = waihu_cmd(d, &["trunks", "check", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["line"], 4, "{v}");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expected udp, tcp or tls"),
        "{v}"
    );
    // TLS fields on a trunk that is not TLS are refused where they are written.
    std::fs::write(
        &f,
        "trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 2\n    cps: 1\n    tls_server_name: carrier.test\n",
    )
    .unwrap();
    let out = waihu_cmd(d, &["trunks", "check", f.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][0]["path"], "trunks[0].tls_server_name", "{v}");
    assert_eq!(v["errors"][0]["line"], 6, "{v}");
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
    let _bad = sipp_uas(d, bad, 26522, false, 0, false, false);
    let _good = sipp_uas(d, good, 26532, true, 500, false, false);
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
