//! WAV files in and out (via `hound`): load any PCM/float WAV as 8 kHz mono for playing
//! into a call; record calls as 8 kHz 16-bit stereo (left: remote party, right: our side).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// WAV problems, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("WAV file {path}: {source}")]
    Hound {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("WAV file {path}: unsupported format ({detail})")]
    Unsupported { path: PathBuf, detail: String },
}

fn herr(path: &Path) -> impl FnOnce(hound::Error) -> WavError + '_ {
    move |source| WavError::Hound {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a WAV file as 8 kHz mono 16-bit samples (channels averaged, resampled linearly).
pub fn read_8k_mono(path: &Path) -> Result<Vec<i16>, WavError> {
    let mut r = hound::WavReader::open(path).map_err(herr(path))?;
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let raw: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => r
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(herr(path))?,
        (hound::SampleFormat::Int, b @ 1..=32) => {
            let scale = 1.0 / (1u64 << (b - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(herr(path))?
        }
        (f, b) => {
            return Err(WavError::Unsupported {
                path: path.to_path_buf(),
                detail: format!("{f:?} {b}-bit"),
            });
        }
    };
    let mono: Vec<f32> = raw
        .chunks(ch)
        .map(|c| c.iter().sum::<f32>() / c.len() as f32)
        .collect();
    Ok(resample(&mono, spec.sample_rate, 8000)
        .into_iter()
        .map(|v| (v * 32767.0).clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// Linear-interpolation resampler (adequate for telephone-band prompts).
pub fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.is_empty() || from == 0 {
        return x.to_vec();
    }
    let n = (x.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    if to < from {
        // Downsampling: average each output sample's input window (a box low-pass) so
        // content above the new Nyquist frequency does not fold back.
        return (0..n)
            .map(|i| {
                let a = (i as f64 * step) as usize;
                let b = (((i + 1) as f64 * step) as usize).clamp(a + 1, x.len());
                x[a.min(x.len() - 1)..b].iter().sum::<f32>()
                    / (b - a.min(x.len() - 1)).max(1) as f32
            })
            .collect();
    }
    (0..n)
        .map(|i| {
            let pos = i as f64 * step;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = x[j.min(x.len() - 1)];
            let b = x[(j + 1).min(x.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// Writes 8 kHz mono 16-bit samples (test fixtures, prompts).
pub fn write_8k_mono(path: &Path, samples: &[i16]) -> Result<(), WavError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(herr(path))?;
    for &s in samples {
        w.write_sample(s).map_err(herr(path))?;
    }
    w.finalize().map_err(herr(path))
}

/// A call recording: 8 kHz 16-bit stereo, left = remote party, right = our side.
pub struct StereoRecorder {
    path: PathBuf,
    w: hound::WavWriter<BufWriter<File>>,
    frames: u64,
}

impl StereoRecorder {
    pub fn create(path: &Path) -> Result<StereoRecorder, WavError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let w = hound::WavWriter::create(path, spec).map_err(herr(path))?;
        Ok(StereoRecorder {
            path: path.to_path_buf(),
            w,
            frames: 0,
        })
    }
    /// Appends time-aligned samples of both sides (the shorter side is padded with silence).
    pub fn write(&mut self, remote: &[i16], ours: &[i16]) -> Result<(), WavError> {
        let n = remote.len().max(ours.len());
        for i in 0..n {
            self.w
                .write_sample(remote.get(i).copied().unwrap_or(0))
                .map_err(herr(&self.path))?;
            self.w
                .write_sample(ours.get(i).copied().unwrap_or(0))
                .map_err(herr(&self.path))?;
        }
        self.frames += n as u64;
        Ok(())
    }
    /// Seconds recorded so far.
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / 8000.0
    }
    pub fn finish(self) -> Result<PathBuf, WavError> {
        let path = self.path.clone();
        self.w.finalize().map_err(herr(&path))?;
        Ok(path)
    }
}

/// Reads a stereo recording back as (left, right) channels.
pub fn read_stereo(path: &Path) -> Result<(Vec<i16>, Vec<i16>), WavError> {
    let mut r = hound::WavReader::open(path).map_err(herr(path))?;
    if r.spec().channels != 2 || r.spec().bits_per_sample != 16 {
        return Err(WavError::Unsupported {
            path: path.to_path_buf(),
            detail: "expected 16-bit stereo".into(),
        });
    }
    let all: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(herr(path))?;
    Ok((
        all.iter().step_by(2).copied().collect(),
        all.iter().skip(1).step_by(2).copied().collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_16k_stereo_as_8k_mono_and_records_stereo() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..16000 {
            w.write_sample(if i % 2 == 0 { 1000i16 } else { 3000 })
                .unwrap();
            w.write_sample(1000i16).unwrap();
        }
        w.finalize().unwrap();
        let s = read_8k_mono(&p).unwrap();
        assert_eq!(s.len(), 8000);
        assert!(
            s.iter().all(|&v| (1400..=2100).contains(&v)),
            "{:?}",
            &s[..4]
        );

        let out = dir.path().join("rec.wav");
        let mut rec = StereoRecorder::create(&out).unwrap();
        rec.write(&[1, 2, 3], &[4, 5]).unwrap();
        assert!((rec.seconds() - 3.0 / 8000.0).abs() < 1e-9);
        rec.finish().unwrap();
        assert_eq!(read_stereo(&out).unwrap(), (vec![1, 2, 3], vec![4, 5, 0]));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.wav");
        std::fs::write(&p, b"RIFF\0\0\0\0WAVEjunk").unwrap();
        let e = read_8k_mono(&p).unwrap_err().to_string();
        assert!(e.contains("bad.wav"), "{e}");
    }
}
