//! baresip as a softphone peer on loopback (Debian `baresip-core`): one
//! configuration for every test that needs a phone — G.711, audio from a WAV
//! file (`aufile`; baresip hangs up when it ends), optionally every call's
//! audio recorded by `sndfile` (`<snd>/…-dec.wav` is what the phone heard),
//! RTP on the ten ports above the SIP port.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Peer;

/// One softphone's configuration.
#[derive(Debug, Clone)]
pub struct Phone<'a> {
    /// SIP on 127.0.0.1:`port`; RTP on `port + 2 ..= port + 9`.
    pub port: u16,
    /// The `accounts` line, e.g. `<sip:li@127.0.0.1:5070>;regint=0;answermode=auto`.
    pub account: String,
    /// What the phone says (8 kHz WAV).
    pub source: &'a Path,
    /// Where `sndfile` records every call (none: not recorded).
    pub snd: Option<&'a Path>,
}

impl Phone<'_> {
    /// An auto-answering phone on `port` that does not register, G.711 only.
    pub fn auto_answer<'a>(port: u16, user: &str, source: &'a Path) -> Phone<'a> {
        Phone {
            port,
            account: format!(
                "<sip:{user}@127.0.0.1:{port}>;regint=0;answermode=auto;audio_codecs=PCMA,PCMU"
            ),
            source,
            snd: None,
        }
    }

    /// Writes `config`, `accounts` and `contacts` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let (snd_path, snd_module) = match self.snd {
            Some(p) => (format!("snd_path {}\n", p.display()), "module sndfile.so\n"),
            None => (String::new(), ""),
        };
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\naudio_player alsa,null\n\
                 audio_source aufile,{wav}\naudio_alert alsa,null\nrtp_ports {rtp}-{rtp2}\n{snd_path}\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule alsa.so\n{snd_module}\
                 module_app account.so\nmodule_app menu.so\n",
                port = self.port,
                wav = self.source.display(),
                rtp = self.port + 2,
                rtp2 = self.port + 9,
            ),
        )?;
        std::fs::write(dir.join("accounts"), format!("{}\n", self.account))?;
        std::fs::write(dir.join("contacts"), "")
    }

    /// Writes the configuration into `dir` and starts baresip there; (the
    /// process, its log). Poll [`ready`] on the log before calling it.
    pub fn spawn(&self, dir: &Path) -> std::io::Result<(Peer, PathBuf)> {
        self.write(dir)?;
        let log = dir.join("baresip.log");
        let child = Command::new("baresip")
            .args(["-f", &dir.to_string_lossy(), "-v"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::null())
            .spawn()?;
        Ok((Peer(child), log))
    }
}

/// Whether the baresip writing `log` has started (its "baresip is ready").
pub fn ready(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("baresip is ready")
}

/// The recording of what the phone heard in its `snd` directory, if any.
pub fn heard(snd: &Path) -> Option<PathBuf> {
    std::fs::read_dir(snd)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_names_the_source_the_ports_and_the_recorder() {
        let dir = std::env::temp_dir().join(format!("waihu-baresip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("a.wav");
        let snd = dir.join("snd");
        let mut p = Phone::auto_answer(29000, "li", &wav);
        p.write(&dir).unwrap();
        let c = std::fs::read_to_string(dir.join("config")).unwrap();
        assert!(
            c.contains("sip_listen 127.0.0.1:29000\n") && c.contains("rtp_ports 29002-29009\n")
        );
        assert!(!c.contains("sndfile"));
        p.snd = Some(&snd);
        p.write(&dir).unwrap();
        let c = std::fs::read_to_string(dir.join("config")).unwrap();
        assert!(
            c.contains(&format!("snd_path {}\n", snd.display()))
                && c.contains("module sndfile.so\n")
        );
        let a = std::fs::read_to_string(dir.join("accounts")).unwrap();
        assert_eq!(
            a,
            "<sip:li@127.0.0.1:29000>;regint=0;answermode=auto;audio_codecs=PCMA,PCMU\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
