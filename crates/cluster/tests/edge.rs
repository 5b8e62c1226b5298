//! The SIP edge that ships in `deploy/kamailio/waihu-edge.cfg`, run for real: Kamailio with
//! the shipped configuration (only its values at the top rewritten for loopback and short
//! probe timings), two SIPp UAS processes as waihu nodes, one SIPp UAS as the carrier trunk,
//! and SIPp UACs as the carrier (inbound calls) and as a node (outbound calls).
//!
//! Every call is a full dialog: INVITE, ACK and BYE, the in-dialog requests following the
//! edge's Record-Route, so a call only counts as answered when the edge routed all three.
//! Which node answered is read from the Contact of the 200 OK in the caller's message log.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use waihu_testkit::edge::{free_ports, start_edge, Edge, Probe};
use waihu_testkit::{have_peer, Peer};

/// Probe timings the test runs with (the shipped defaults are 5 s, 3 and 3, 3000 ms).
const PING_INTERVAL_S: u32 = 1;
const PROBE_FAILURES: u32 = 2;
const PROBE_SUCCESSES: u32 = 2;
const NO_REPLY_MS: u32 = 1000;

/// A waihu node (or the trunk): answers every INVITE, echoes the Record-Route so the
/// caller's ACK and BYE come back through the edge, and insists on both.
const NODE_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="node">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=node 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <timewait milliseconds="1000"/>
</scenario>
"#;

/// A caller: INVITE to the edge, ACK and BYE along the route set of the 200 OK, the pause
/// between them set by `-d`. Provisional answers are optional anywhere (`global`):
/// Kamailio's UDP workers may relay a 180 after the 200 under load, which a UAC ignores.
const CALLER_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="global"/>
  <recv response="180" optional="global"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// A trunk whose callee rings and never answers: 180, then the CANCEL gets 200 and the
/// INVITE 487, which the edge acknowledges hop by hop.
const RINGING_UAS: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ringing">
  <recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="[0-9]+ INVITE" search_in="hdr" header="CSeq:" check_it="true" assign_to="invite_cseq"/>
    </action>
  </recv>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="CANCEL"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <send>
    <![CDATA[
      SIP/2.0 487 Request Terminated
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      CSeq: [$invite_cseq]
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"#;

/// A caller that gives up while the callee rings (a node's ring timeout): CANCEL on
/// 180, then 200 for the CANCEL and 487 for the INVITE. The INVITE, its CANCEL and the
/// ACK of the 487 share one branch, as RFC 3261 requires.
const CANCELLING_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cancelling">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-waihu-[pid]-[call_number]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="global"/>
  <recv response="180"/>
  <send retrans="500">
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-waihu-[pid]-[call_number]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-waihu-[pid]-[call_number]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#;

/// A stranger (not a node, not the carrier): a new call, then a forged in-dialog BYE
/// that would use the edge's Record-Route to relay to the trunk. Both must get 403.
const STRANGER_UAC: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="stranger">
  <Global variables="trunk"/>
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:scanner@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:scanner@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="403"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:scanner@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE sip:relay@[$trunk] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Route: <sip:[remote_ip]:[remote_port];lr>
      From: <sip:scanner@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:relay@[$trunk]>;tag=forged
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="403"/>
</scenario>
"#;

/// Waits up to `limit` for a child to exit; a child still running then is a failure
/// (and is killed when its [`Peer`] drops).
fn wait_exit(p: &mut Peer, what: &str, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().expect("wait for a child") {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "{what} still running after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SIPp UAS (a node or the trunk) on `port`, logging every message to `<name>.log`;
/// `-aa` makes it answer the edge's OPTIONS probes.
fn start_uas(dir: &Path, name: &str, port: u16) -> Peer {
    start_uas_with(dir, "node.xml", name, port)
}

fn start_uas_with(dir: &Path, scenario: &str, name: &str, port: u16) -> Peer {
    let media = free_ports(1)[0];
    Peer(
        Command::new("sipp")
            .current_dir(dir)
            .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-aa", "-nostdin", "-trace_msg"])
            .args(["-message_file", &format!("{name}.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp uas"),
    )
}

/// A SIPp UAC placing `calls` calls from 127.0.0.1:`port` to the edge, each held
/// `hold_ms` between ACK and BYE; its messages go to `<name>.log`.
fn start_uac(dir: &Path, name: &str, port: u16, edge: u16, calls: u32, hold_ms: u32) -> Peer {
    start_uac_with(dir, "caller.xml", name, port, edge, calls, hold_ms)
}

fn start_uac_with(
    dir: &Path,
    scenario: &str,
    name: &str,
    port: u16,
    edge: u16,
    calls: u32,
    hold_ms: u32,
) -> Peer {
    let media = free_ports(1)[0];
    Peer(
        Command::new("sipp")
            .current_dir(dir)
            .arg(format!("127.0.0.1:{edge}"))
            .args(["-sf", scenario, "-s", "4000", "-i", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-m", &calls.to_string(), "-r", "50", "-l", "20"])
            .args(["-d", &hold_ms.to_string(), "-aa", "-nostdin"])
            .args(["-recv_timeout", "8000", "-timeout", "20", "-timeout_error"])
            .args(["-trace_msg", "-message_file", &format!("{name}.log")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp uac"),
    )
}

/// The messages a SIPp message log shows as received, each as its SIP text.
fn received_messages(log: &str) -> Vec<&str> {
    log.split("\n-----------------------------------------------")
        .filter_map(|chunk| {
            let (head, msg) = chunk.split_once("\n\n")?;
            head.contains("message received").then_some(msg)
        })
        .collect()
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Port of the first `127.0.0.1:<port>` in a header value.
fn loopback_port(v: &str) -> Option<u16> {
    let rest = &v[v.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Calls a caller saw answered, per answering port (from the 200 OK's Contact), each
/// Call-ID counted once.
fn answered_by(dir: &Path, name: &str) -> BTreeMap<u16, usize> {
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    let mut calls = BTreeMap::new();
    for msg in received_messages(&log) {
        let invite_ok = msg.starts_with("SIP/2.0 200")
            && header(msg, "CSeq").is_some_and(|c| c.ends_with("INVITE"));
        if let (true, Some(id), Some(port)) = (
            invite_ok,
            header(msg, "Call-ID"),
            header(msg, "Contact").and_then(loopback_port),
        ) {
            calls.insert(id.to_string(), port);
        }
    }
    let mut per_port = BTreeMap::new();
    for port in calls.into_values() {
        *per_port.entry(port).or_insert(0) += 1;
    }
    per_port
}

/// Runs a batch of short inbound calls from the carrier and returns who answered them;
/// every call must have completed.
fn inbound_batch(edge: &Edge, name: &str, calls: u32) -> BTreeMap<u16, usize> {
    let port = free_ports(1)[0];
    let mut uac = start_uac(&edge.dir, name, port, edge.port, calls, 0);
    let status = wait_exit(&mut uac, name, Duration::from_secs(25));
    let by = answered_by(&edge.dir, name);
    assert!(
        status.success(),
        "{name}: sipp reports failed calls ({status}); answered {by:?}; edge log:\n{}",
        edge.log()
    );
    assert_eq!(
        by.values().sum::<usize>(),
        calls as usize,
        "{name}: answered {by:?}"
    );
    by
}

#[test]
fn kamailio_edge_spreads_fails_over_drains_and_relays_outbound() {
    if !have_peer("kamailio") || !have_peer("sipp") || !have_peer("kamcmd") {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    std::fs::write(dir.join("node.xml"), NODE_UAS).unwrap();
    std::fs::write(dir.join("caller.xml"), CALLER_UAC).unwrap();
    std::fs::write(dir.join("ringing.xml"), RINGING_UAS).unwrap();
    std::fs::write(dir.join("cancelling.xml"), CANCELLING_UAC).unwrap();

    let ports = free_ports(3);
    let (a, b, trunk) = (ports[0], ports[1], ports[2]);
    let uri_a = format!("sip:127.0.0.1:{a}");
    let uri_b = format!("sip:127.0.0.1:{b}");
    let edge = start_edge(
        dir,
        &[a, b],
        trunk,
        Probe {
            interval_s: PING_INTERVAL_S,
            failures: PROBE_FAILURES,
            successes: PROBE_SUCCESSES,
            no_reply_ms: NO_REPLY_MS,
        },
    );
    let mut node_a = Some(start_uas(dir, "node_a", a));
    let _node_b = start_uas(dir, "node_b", b);
    let mut trunk_uas = Some(start_uas(dir, "trunk", trunk));
    let probe_limit = Duration::from_secs(10);
    edge.wait_state(&uri_a, 'A', probe_limit);
    edge.wait_state(&uri_b, 'A', probe_limit);

    // 1. Inbound calls are spread over both nodes, round robin.
    let n = 20;
    let spread = inbound_batch(&edge, "spread", n);
    println!("spread: {n} calls answered per node {spread:?} (a={a}, b={b})");
    for node in [a, b] {
        let got = spread.get(&node).copied().unwrap_or(0);
        assert!(got >= 8, "node {node} got {got} of {n}: {spread:?}");
    }

    // 2. `ip` (inactive, probing) is no drain: with every node probed, a node that
    //    answers is active again after PROBE_SUCCESSES probes.
    edge.kamcmd(&["dispatcher.set_state", "ip", "1", &uri_a]);
    let ip_back = edge.wait_state(&uri_a, 'A', probe_limit);
    println!("set_state ip on a live node: active again after {ip_back:?}");

    //    The drain is `d` (disabled: neither chosen nor probed): node a takes no new
    //    calls, but the calls it already has keep working (their BYEs reach it through
    //    Record-Route).
    let mut long = start_uac(dir, "long", free_ports(1)[0], edge.port, 4, 5000);
    let start = Instant::now();
    while answered_by(dir, "long").values().sum::<usize>() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "long calls not answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    edge.kamcmd(&["dispatcher.set_state", "d", "1", &uri_a]);
    assert!(edge.flags()[&uri_a].starts_with('D'), "{:?}", edge.flags());
    let drained = inbound_batch(&edge, "drained", 10);
    println!("drained a: 10 calls answered per node {drained:?}");
    assert_eq!(drained.get(&b), Some(&10), "{drained:?}");
    let status = wait_exit(&mut long, "long calls", Duration::from_secs(15));
    let long_by = answered_by(dir, "long");
    assert!(
        status.success(),
        "calls held across the drain failed: {long_by:?}"
    );
    assert!(long_by.get(&a).is_some_and(|&c| c >= 1), "{long_by:?}");
    // ... and stays out: probes do not bring a disabled node back.
    std::thread::sleep(Duration::from_secs(u64::from(
        PING_INTERVAL_S * (PROBE_SUCCESSES + 1),
    )));
    assert!(edge.flags()[&uri_a].starts_with('D'), "{:?}", edge.flags());
    edge.kamcmd(&["dispatcher.set_state", "ap", "1", &uri_a]);
    let back = inbound_batch(&edge, "returned", 10);
    println!("a returned: 10 calls answered per node {back:?}");
    assert!(back.get(&a).is_some_and(|&c| c >= 4), "{back:?}");

    // 3. A dead node leaves rotation by probing alone, and comes back when it answers.
    let killed = Instant::now();
    drop(node_a.take());
    edge.wait_state(&uri_a, 'I', probe_limit);
    let dead_after = killed.elapsed();
    println!("node a killed: inactive after {dead_after:?}");
    let survivor = inbound_batch(&edge, "survivor", 10);
    println!("a dead: 10 calls answered per node {survivor:?}");
    assert_eq!(survivor.get(&b), Some(&10), "{survivor:?}");
    node_a = Some(start_uas(dir, "node_a2", a));
    let back_after = edge.wait_state(&uri_a, 'A', probe_limit);
    println!("node a restarted: active after {back_after:?}");

    // 4. Killed again and called at once, before probing notices: the calls sent to it
    //    time out and fail over to the survivor; none is lost.
    drop(node_a.take());
    let failover_before = edge.log().matches("failover to node").count();
    let t = Instant::now();
    let failover = inbound_batch(&edge, "failover", 10);
    let failovers = edge.log().matches("failover to node").count() - failover_before;
    println!(
        "a killed, calls at once: 10 calls answered per node {failover:?} in {:?}, {failovers} failed over",
        t.elapsed()
    );
    assert_eq!(failover.get(&b), Some(&10), "{failover:?}");
    assert!(failovers >= 1, "no call was sent to the dead node");

    // 5. Outbound: a node (sending from its own address in the dispatcher list) calls
    //    through the edge and reaches the trunk.
    let mut out = start_uac(dir, "outbound", a, edge.port, 5, 0);
    let status = wait_exit(&mut out, "outbound calls", Duration::from_secs(25));
    let out_by = answered_by(dir, "outbound");
    assert!(
        status.success(),
        "outbound calls failed: {out_by:?}\n{}",
        edge.log()
    );
    assert_eq!(out_by.get(&trunk), Some(&5), "{out_by:?}");
    let trunk_log = std::fs::read_to_string(dir.join("trunk.log")).unwrap_or_default();
    let via_edge: BTreeSet<&str> = received_messages(&trunk_log)
        .into_iter()
        .filter(|m| m.starts_with("INVITE "))
        .filter(|m| header(m, "Record-Route").and_then(loopback_port) == Some(edge.port))
        .filter_map(|m| header(m, "Call-ID"))
        .collect();
    assert_eq!(via_edge.len(), 5, "INVITEs at the trunk: {via_edge:?}");
    println!("outbound: 5 calls from node a answered by the trunk {out_by:?}");

    // 6. A node gives up on a ringing callee: its CANCEL reaches the trunk through the
    //    edge and the 487 comes back.
    drop(trunk_uas.take());
    let _ringing = start_uas_with(dir, "ringing.xml", "ringing", trunk);
    let mut cancel = start_uac_with(dir, "cancelling.xml", "cancelling", a, edge.port, 3, 0);
    let status = wait_exit(&mut cancel, "cancelled calls", Duration::from_secs(25));
    let ringing_log = std::fs::read_to_string(dir.join("ringing.log")).unwrap_or_default();
    let cancels: BTreeSet<&str> = received_messages(&ringing_log)
        .into_iter()
        .filter(|m| m.starts_with("CANCEL "))
        .filter_map(|m| header(m, "Call-ID"))
        .collect();
    assert!(status.success(), "cancelled calls failed\n{}", edge.log());
    assert_eq!(cancels.len(), 3, "CANCELs at the trunk: {cancels:?}");
    println!("cancel: 3 ringing outbound calls cancelled by the node, 487 back");

    // 7. A stranger on 127.0.0.3 is refused: its INVITE and its forged in-dialog BYE
    //    (routed through the edge to the trunk) both get 403 and reach no one.
    std::fs::write(dir.join("stranger.xml"), STRANGER_UAC).unwrap();
    let mut stranger = Peer(
        Command::new("sipp")
            .current_dir(dir)
            .arg(format!("127.0.0.1:{}", edge.port))
            .args(["-sf", "stranger.xml", "-s", "4000", "-i", "127.0.0.3"])
            .args(["-p", &free_ports(1)[0].to_string(), "-m", "1"])
            .args(["-set", "trunk", &format!("127.0.0.1:{trunk}")])
            .args(["-nostdin", "-recv_timeout", "5000", "-timeout", "15"])
            .args([
                "-timeout_error",
                "-trace_msg",
                "-message_file",
                "stranger.log",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp stranger"),
    );
    let status = wait_exit(&mut stranger, "stranger", Duration::from_secs(20));
    let stranger_log = std::fs::read_to_string(dir.join("stranger.log")).unwrap_or_default();
    let refusals = received_messages(&stranger_log)
        .iter()
        .filter(|m| m.starts_with("SIP/2.0 403"))
        .count();
    assert!(
        status.success() && refusals >= 2,
        "the stranger was not refused ({status}, {refusals} 403s):\n{stranger_log}\n{}",
        edge.log()
    );
    let reached: Vec<String> = ["node_b", "ringing"]
        .iter()
        .flat_map(|n| {
            let log = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            received_messages(&log)
                .into_iter()
                .filter(|m| m.contains("scanner@127.0.0.3"))
                .map(|m| m.lines().next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(reached.is_empty(), "the stranger reached: {reached:?}");
    let log = edge.log();
    assert!(
        log.contains("refused INVITE") && log.contains("refused BYE"),
        "{log}"
    );
    println!("stranger on 127.0.0.3: INVITE and forged BYE refused with 403, reached no one");
    println!("edge test wall time {:?}", started.elapsed());
}
