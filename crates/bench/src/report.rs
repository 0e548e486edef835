//! Output: the table on stdout, `latest.csv`, `latest.json` and `throughput.svg`.

use crate::child::Res;
use crate::stats::{csv_field, human_rate, human_size, json_num, json_str};
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One line of the results. Fields a section does not measure stay `None` (empty in
/// the CSV, `null` in the JSON).
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// transport | 2x2 | memcpy | checksum | latency | e2e | spin
    pub section: &'static str,
    /// Mechanism (or e2e variant).
    pub mechanism: String,
    /// Frame size in bytes (e2e: the file size).
    pub size: u64,
    /// unpinned | same-cpu | split
    pub placement: &'static str,
    /// Frames per second.
    pub msgs: f64,
    /// Payload megabytes (10^6) per second.
    pub mbps: f64,
    /// Against the one-write pipe (transport), against `cat | cat` (e2e).
    pub ratio: Option<f64>,
    /// CPU seconds (all processes of the run) per GiB moved.
    pub cpu_s_per_gib: Option<f64>,
    /// Largest peak RSS of any process of the run, KiB.
    pub rss_kib: Option<u64>,
    /// Round-trip latency percentiles (latency rows).
    pub p50_us: Option<f64>,
    /// See `p50_us`.
    pub p99_us: Option<f64>,
    /// Measured seconds.
    pub secs: f64,
    /// Bytes moved.
    pub bytes: u64,
    /// Slowest and fastest of the repetitions, MB/s (e2e and spin rows).
    pub min_mbps: Option<f64>,
    /// See `min_mbps`.
    pub max_mbps: Option<f64>,
    /// e2e: against `pv -q F | cat` to the same sink, same placement.
    pub ratio_pv: Option<f64>,
    /// e2e: against `cat F > /dev/null` (one process), same placement.
    pub ratio_cat_null: Option<f64>,
    /// The reader process alone: CPU seconds per GiB (e2e ring rows, spin rows).
    pub reader_cpu_s_per_gib: Option<f64>,
    /// Spin idle rows: CPU milliseconds the reader used over its whole life.
    pub reader_cpu_ms: Option<f64>,
    /// Spin idle rows: CPU milliseconds the reader used in the idle window alone.
    pub reader_idle_cpu_ms: Option<f64>,
    /// Why the row has no numbers (`skipped: ...`), if it has none.
    pub note: Option<String>,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
}

/// The human table for one section.
pub fn table(rows: &[Row], section: &str) -> String {
    let mut s = String::new();
    let rows: Vec<&Row> = rows.iter().filter(|r| r.section == section).collect();
    if rows.is_empty() {
        return s;
    }
    if section == "e2e" {
        return e2e_table(&rows);
    }
    if section == "spin" {
        return spin_table(&rows);
    }
    if section == "latency" {
        let _ = writeln!(
            s,
            "{:<16} {:>8} {:<9} {:>10} {:>10} {:>10} {:>9}",
            "mechanism", "msg", "placement", "p50 µs", "p99 µs", "CPU s/GiB", "RSS MiB"
        );
        for r in rows {
            let _ = writeln!(
                s,
                "{:<16} {:>8} {:<9} {:>10} {:>10} {:>10} {:>9}",
                r.mechanism,
                human_size(r.size),
                r.placement,
                opt(r.p50_us, 1),
                opt(r.p99_us, 1),
                opt(r.cpu_s_per_gib, 0),
                opt(r.rss_kib.map(|k| k as f64 / 1024.0), 1)
            );
        }
        return s;
    }
    let _ = writeln!(
        s,
        "{:<24} {:>8} {:<9} {:>9} {:>10} {:>9} {:>10} {:>8}",
        "mechanism", "size", "placement", "msg/s", "MB/s", "ratio", "CPU s/GiB", "RSS MiB"
    );
    for r in rows {
        let msgs = if section == "e2e" || section == "memcpy" {
            "-".to_string()
        } else {
            human_rate(r.msgs)
        };
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:<9} {:>9} {:>10.0} {:>9} {:>10} {:>8}",
            r.mechanism,
            human_size(r.size),
            r.placement,
            msgs,
            r.mbps,
            r.ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
            opt(r.cpu_s_per_gib, 2),
            opt(r.rss_kib.map(|k| k as f64 / 1024.0), 1)
        );
    }
    s
}

/// GB/s (10^9 bytes) from MB/s, two decimals.
fn gbps(mbps: f64) -> String {
    format!("{:.2}", mbps / 1e3)
}

/// "4.81-5.12" (GB/s), or "-".
fn range(r: &Row) -> String {
    match (r.min_mbps, r.max_mbps) {
        (Some(lo), Some(hi)) => format!("{}-{}", gbps(lo), gbps(hi)),
        _ => "-".into(),
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
}

/// The end-to-end table: GB/s median and range, CPU, the three ratios.
fn e2e_table(rows: &[&Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<34} {:>8} {:<9} {:>6} {:>11} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7}",
        "mechanism",
        "size",
        "placement",
        "GB/s",
        "min-max",
        "CPU s/GiB",
        "reader s",
        "x pv|cat",
        "x cat>nul",
        "x cat|cat",
        "RSS MiB"
    );
    for r in rows {
        if let Some(note) = &r.note {
            let _ = writeln!(
                s,
                "{:<34} {:>8} {:<9} {note}",
                r.mechanism,
                human_size(r.size),
                r.placement
            );
            continue;
        }
        let _ = writeln!(
            s,
            "{:<34} {:>8} {:<9} {:>6} {:>11} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7}",
            r.mechanism,
            human_size(r.size),
            r.placement,
            gbps(r.mbps),
            range(r),
            opt(r.cpu_s_per_gib, 2),
            opt(r.reader_cpu_s_per_gib, 2),
            times(r.ratio_pv),
            times(r.ratio_cat_null),
            times(r.ratio),
            opt(r.rss_kib.map(|k| k as f64 / 1024.0), 1)
        );
    }
    s
}

/// The spin table: idle rows (reader CPU over an idle wait) and streaming rows
/// (GB/s, CPU of both processes and of the reader alone).
fn spin_table(rows: &[&Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<45} {:>8} {:<9} {:>6} {:>8} {:>8} {:>6} {:>11} {:>9} {:>8}",
        "measurement",
        "size",
        "placement",
        "idle s",
        "idle ms",
        "life ms",
        "GB/s",
        "min-max",
        "CPU s/GiB",
        "reader s"
    );
    for r in rows {
        let idle = r.reader_cpu_ms.is_some();
        let size = if idle { "-".into() } else { human_size(r.size) };
        if let Some(note) = &r.note {
            let _ = writeln!(
                s,
                "{:<45} {:>8} {:<9} {note}",
                r.mechanism, size, r.placement
            );
            continue;
        }
        let _ = writeln!(
            s,
            "{:<45} {:>8} {:<9} {:>6} {:>8} {:>8} {:>6} {:>11} {:>9} {:>8}",
            r.mechanism,
            size,
            r.placement,
            if idle {
                format!("{:.2}", r.secs)
            } else {
                "-".into()
            },
            opt(r.reader_idle_cpu_ms, 2),
            opt(r.reader_cpu_ms, 2),
            if idle { "-".into() } else { gbps(r.mbps) },
            if idle { "-".into() } else { range(r) },
            opt(r.cpu_s_per_gib, 2),
            opt(r.reader_cpu_s_per_gib, 2)
        );
    }
    s
}

const CSV_HEADER: &str = "section,mechanism,size_bytes,placement,msgs_per_s,mb_per_s,ratio,cpu_s_per_gib,peak_rss_kib,p50_us,p99_us,secs,bytes,min_mb_per_s,max_mb_per_s,ratio_pv_cat,ratio_cat_null,reader_cpu_s_per_gib,reader_cpu_ms,reader_idle_cpu_ms,note";

/// All rows as CSV.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    let o = |v: Option<f64>| v.map_or_else(String::new, |x| format!("{x:.4}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{:.1},{:.3},{},{},{},{},{},{:.6},{},{},{},{},{},{},{},{},{}",
            r.section,
            csv_field(&r.mechanism),
            r.size,
            r.placement,
            r.msgs,
            r.mbps,
            o(r.ratio),
            o(r.cpu_s_per_gib),
            r.rss_kib.map_or_else(String::new, |k| k.to_string()),
            o(r.p50_us),
            o(r.p99_us),
            r.secs,
            r.bytes,
            o(r.min_mbps),
            o(r.max_mbps),
            o(r.ratio_pv),
            o(r.ratio_cat_null),
            o(r.reader_cpu_s_per_gib),
            o(r.reader_cpu_ms),
            o(r.reader_idle_cpu_ms),
            r.note.as_deref().map_or_else(String::new, csv_field)
        );
    }
    s
}

/// All rows, the machine and the settings as JSON.
pub fn json(rows: &[Row], machine: &[(&str, String)], settings: &[(&str, String)]) -> String {
    let obj = |pairs: &[(&str, String)]| {
        let inner: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
            .collect();
        format!("{{{}}}", inner.join(", "))
    };
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"machine\": {},", obj(machine));
    let _ = writeln!(s, "  \"settings\": {},", obj(settings));
    s.push_str("  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"section\": {}, \"mechanism\": {}, \"size_bytes\": {}, \"placement\": {}, \
             \"msgs_per_s\": {}, \"mb_per_s\": {}, \"ratio\": {}, \"cpu_s_per_gib\": {}, \
             \"peak_rss_kib\": {}, \"p50_us\": {}, \"p99_us\": {}, \"secs\": {}, \"bytes\": {}, \
             \"min_mb_per_s\": {}, \"max_mb_per_s\": {}, \"ratio_pv_cat\": {}, \
             \"ratio_cat_null\": {}, \"reader_cpu_s_per_gib\": {}, \"reader_cpu_ms\": {}, \
             \"reader_idle_cpu_ms\": {}, \"note\": {}}}",
            json_str(r.section),
            json_str(&r.mechanism),
            r.size,
            json_str(r.placement),
            json_num(Some(r.msgs)),
            json_num(Some(r.mbps)),
            json_num(r.ratio),
            json_num(r.cpu_s_per_gib),
            json_num(r.rss_kib.map(|k| k as f64)),
            json_num(r.p50_us),
            json_num(r.p99_us),
            json_num(Some(r.secs)),
            r.bytes,
            json_num(r.min_mbps),
            json_num(r.max_mbps),
            json_num(r.ratio_pv),
            json_num(r.ratio_cat_null),
            json_num(r.reader_cpu_s_per_gib),
            json_num(r.reader_cpu_ms),
            json_num(r.reader_idle_cpu_ms),
            r.note.as_deref().map_or_else(|| "null".into(), json_str)
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

/// Throughput (MB/s, log) against frame size (log), one line per mechanism, for the
/// transport rows of `placement` plus the memcpy reference and the 2x2 ring.
pub fn chart(rows: &[Row], placement: &str, subtitle: &str, path: &Path) -> Res<()> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in rows.iter().filter(|r| {
        matches!(r.section, "transport" | "memcpy" | "2x2")
            && (r.placement == placement || r.section == "memcpy")
    }) {
        let name = match r.section {
            "memcpy" => "memcpy (1 thread)".to_string(),
            "2x2" => "ring (2 writers x 2 readers)".to_string(),
            _ => r.mechanism.clone(),
        };
        let pt = (r.size as f64, r.mbps.max(1e-3));
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push(pt),
            None => series.push((name, vec![pt])),
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let ys = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, y)| y));
    let (lo, hi) = ys.fold((f64::MAX, 0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput vs frame size ({placement}) - {subtitle}"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (40f64..1.7e6f64).log_scale(),
            ((lo / 2.0)..(hi * 2.0)).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("frame size (bytes)")
        .y_desc("MB/s (payload)")
        .x_label_formatter(&|v| human_size(v.round() as u64))
        .y_label_formatter(&|v| human_rate(*v))
        .draw()?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(PointSeries::of_element(
            pts.clone(),
            4,
            color.filled(),
            &|c, s, st| Circle::new(c, s, st),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Row {
        Row {
            section: "transport",
            mechanism: "ring".into(),
            size: 64,
            placement: "split",
            msgs: 1e7,
            mbps: 640.0,
            ratio: Some(12.0),
            cpu_s_per_gib: Some(3.0),
            rss_kib: Some(2048),
            p50_us: None,
            p99_us: None,
            secs: 0.5,
            bytes: 320_000_000,
            ..Row::default()
        }
    }

    #[test]
    fn csv_and_json_have_every_row() {
        let rows = vec![sample(), sample()];
        let c = csv(&rows);
        assert_eq!(c.lines().count(), 3);
        assert!(c
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("transport,ring,64,split,")));
        let j = json(&rows, &[("cpu", "x".into())], &[]);
        assert_eq!(j.matches("\"section\"").count(), 2);
        assert!(j.contains("\"p50_us\": null"));
    }

    #[test]
    fn every_csv_line_has_every_column() {
        let mut skipped = sample();
        skipped.section = "e2e";
        skipped.note = Some("skipped: pv not installed (apt-get install pv)".into());
        let c = csv(&[sample(), skipped]);
        let n = CSV_HEADER.split(',').count();
        assert!(c.lines().all(|l| l.split(',').count() == n), "{c}");
        assert!(c.contains(",skipped: pv not installed (apt-get install pv)"));
        let j = json(&[sample()], &[], &[]);
        assert!(j.contains("\"note\": null") && j.contains("\"ratio_pv_cat\": null"));
    }

    #[test]
    fn e2e_and_spin_tables_show_skips_and_ranges() {
        let mut r = sample();
        r.section = "e2e";
        r.min_mbps = Some(4810.0);
        r.max_mbps = Some(5120.0);
        r.ratio_pv = Some(2.0);
        let mut skipped = r.clone();
        skipped.mechanism = "pv -q F | cat > /dev/null".into();
        skipped.note = Some("skipped: pv not installed (apt-get install pv)".into());
        let t = table(&[r.clone(), skipped], "e2e");
        assert!(
            t.contains("0.64") && t.contains("4.81-5.12") && t.contains("2.00x"),
            "{t}"
        );
        assert!(t.contains("pv -q F | cat > /dev/null") && t.contains("skipped: pv"));
        let mut idle = sample();
        idle.section = "spin";
        idle.reader_cpu_ms = Some(1.5);
        idle.reader_idle_cpu_ms = Some(0.25);
        let t = table(&[idle], "spin");
        assert!(t.contains("0.25") && t.contains("1.50"), "{t}");
    }

    #[test]
    fn table_formats() {
        let t = table(&[sample()], "transport");
        assert!(t.contains("10.0M"));
        assert!(t.contains("12.00x"));
    }
}
