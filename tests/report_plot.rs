//! Charts end to end: PNG and SVG bytes, atomic saving, and data that must not break drawing.

use std::fs;

use steplens::report::plot::{Band, Chart, RatioChart, SIZE, Series, render_png, render_svg, save};

/// tab10 blue and orange: the colours of series 0 and 1.
const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];

fn line(n: usize, f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
    (0..n).map(|i| (i as f64, f(i as f64))).collect()
}

fn loss_chart() -> Chart {
    Chart::new("Training loss", "epoch", "loss")
        .log_y()
        .with_series(Series::line_points("constant 0.005", line(7, |e| 0.7 * (-0.1 * e).exp())))
        .with_series(Series::line("accurate τ = ∞", line(7, |e| 0.7 * (-0.9 * e).exp())))
        .with_band(Band::new("quartiles", line(7, |e| 0.5 * (-0.1 * e).exp()), line(7, |e| 0.9 * (-0.1 * e).exp())))
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[8..16], b"\0\0\0\x0dIHDR", "IHDR is the first chunk");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

/// The decoded RGB pixels.
fn decode(bytes: &[u8]) -> Vec<[u8; 3]> {
    let mut reader = png::Decoder::new(bytes).read_info().expect("decodable PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("one frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()].chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect()
}

fn count(pixels: &[[u8; 3]], colour: [u8; 3]) -> usize {
    pixels.iter().filter(|p| **p == colour).count()
}

#[test]
fn png_has_the_size_and_draws_each_series_in_its_colour() {
    let png = render_png(&loss_chart()).unwrap();
    assert_eq!(png_size(&png), SIZE);
    let pixels = decode(&png);
    assert_eq!(pixels.len(), (SIZE.0 * SIZE.1) as usize);
    assert!(count(&pixels, BLUE) > 500, "series 0 drawn: {}", count(&pixels, BLUE));
    assert!(count(&pixels, ORANGE) > 500, "series 1 drawn: {}", count(&pixels, ORANGE));
    let dark = pixels.iter().filter(|p| p.iter().all(|c| *c < 100)).count();
    assert!(dark > 2000, "text and frame drawn: {dark}");
}

#[test]
fn svg_names_the_title_axes_and_series() {
    let chart = Chart::new("Projection picture", "Π_q(θ)", "Π_q(∇f_i)")
        .with_series(Series::points("perturbed points", line(50, |x| -0.5 - 3.2 * x)))
        .with_series(Series::line("fit", vec![(0.0, -0.5), (49.0, -0.5 - 3.2 * 49.0)]));
    let svg = render_svg(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains(r#"width="1000" height="700""#));
    for text in ["Projection picture", "Π_q(θ)", "Π_q(∇f_i)", "perturbed points", "fit"] {
        assert!(svg.contains(text), "{text}");
    }
    assert!(svg.contains("#1F77B4") || svg.contains("#1f77b4"), "series colour");
}

#[test]
fn save_writes_both_atomically_and_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("loss.png"), dir.path().join("loss.svg"));
    save(&loss_chart(), Some(&png), Some(&svg)).unwrap();
    save(&loss_chart(), Some(&png), None).unwrap();
    assert_eq!(png_size(&fs::read(&png).unwrap()), SIZE);
    assert!(fs::read_to_string(&svg).unwrap().contains("Training loss"));
    let mut names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["loss.png", "loss.svg"], "no temporary files left");
}

#[test]
fn save_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("missing/loss.png");
    let err = save(&loss_chart(), Some(&png), None).unwrap_err();
    assert!(err.to_string().contains("missing/loss.png"), "{err}");
}

#[test]
fn log_axes_skip_zeros_negatives_and_non_finite_values() {
    let awkward = vec![
        (0.0, 1.0),
        (1.0, 0.0),
        (2.0, -3.0),
        (3.0, f64::NAN),
        (f64::INFINITY, 2.0),
        (4.0, 0.5),
        (5.0, 0.25),
        (6.0, f64::NEG_INFINITY),
        (7.0, 1e-300),
    ];
    let chart = Chart::new("log–log with bad values", "x", "y")
        .log_x()
        .log_y()
        .with_series(Series::line("line", awkward.clone()))
        .with_series(Series::points("points", awkward.clone()))
        .with_band(Band::new("band", awkward.clone(), awkward.iter().map(|&(x, y)| (x, 2.0 * y)).collect()));
    let pixels = decode(&render_png(&chart).unwrap());
    assert!(count(&pixels, BLUE) > 50, "the valid segment 4 → 5 is drawn");
    assert!(render_svg(&chart).unwrap().contains("log–log with bad values"));
}

#[test]
fn charts_with_nothing_to_draw_still_render() {
    let all_bad = Series::line("nothing", vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)]);
    let charts = [
        Chart::new("Empty", "x", "y"),
        Chart::new("No points", "x", "y")
            .with_series(Series::line("a", vec![]))
            .with_series(Series::points("b", vec![])),
        Chart::new("All invalid", "x", "y").log_y().with_series(all_bad).with_band(Band::new("b", vec![], vec![])),
        Chart::new("Only zeros on a log axis", "x", "y").log_x().with_series(Series::line("z", line(5, |_| 0.0))),
        Chart::new("One point", "x", "y").with_series(Series::points("p", vec![(3.0, 3.0)])),
        Chart::new("", "", ""),
    ];
    for chart in &charts {
        let png = render_png(chart).unwrap();
        assert_eq!(png_size(&png), SIZE, "{}", chart.title);
        let svg = render_svg(chart).unwrap();
        assert!(svg.contains(&chart.title), "{}", chart.title);
        let dark = decode(&png).iter().filter(|p| p.iter().all(|c| *c < 100)).count();
        assert!(dark > 500, "{}: the frame and ticks are drawn ({dark})", chart.title);
    }
}

#[test]
fn extreme_values_do_not_panic() {
    let chart = Chart::new("extremes", "x", "y")
        .with_series(Series::line("huge", vec![(-f64::MAX, f64::MAX), (f64::MAX, -f64::MAX), (0.0, 5e-324)]))
        .with_series(Series::points("many", line(20_000, |x| (x * 0.01).sin())));
    render_png(&chart).unwrap();
    let log = Chart { x_scale: steplens::report::plot::Scale::Log, ..chart.clone() }.log_y();
    render_png(&log).unwrap();
    render_svg(&log).unwrap();
}

#[test]
fn many_series_cycle_the_palette_and_keep_a_legend() {
    let mut chart = Chart::new("twelve schedules", "epoch", "loss");
    for k in 0..12 {
        chart = chart.with_series(Series::line(format!("schedule {k}"), line(10, |e| (k as f64 + 1.0) / (e + 1.0))));
    }
    let svg = render_svg(&chart).unwrap();
    assert!(svg.contains("schedule 11"));
    assert_eq!(png_size(&render_png(&chart).unwrap()), SIZE);
}

/// Three members, three methods: finite spreads, a divergence (∞ median and upper quartile), and
/// a method that did not run on one member.
fn ratio_chart() -> RatioChart {
    RatioChart {
        title: "Final loss ÷ the tuned constant's".into(),
        members: vec!["mnist01:softmax".into(), "breast_cancer:logreg".into(), "diabetes:lls".into()],
        methods: vec!["schedule".into(), "sps".into(), "notebook".into()],
        spreads: vec![
            vec![Some([0.9, 1.0, 1.1]), Some([0.7, 0.71, 0.8]), Some([1.0, 1.0, 1.02])],
            vec![Some([1.0, 1.1, 1.3]), Some([0.5, 0.67, 0.9]), Some([1.5, 1.92, 2.5])],
            vec![Some([20.0, 32.0, 40.0]), None, Some([3.0, f64::INFINITY, f64::INFINITY])],
        ],
    }
}

#[test]
fn the_ratio_chart_draws_a_mark_per_method_and_member_and_names_them() {
    let chart = ratio_chart();
    let pixels = decode(&render_png(&chart).unwrap());
    // Each method's marks in its colour (tab10 blue, orange, green).
    for (name, colour) in [("schedule", BLUE), ("sps", ORANGE), ("notebook", [44, 160, 44])] {
        assert!(count(&pixels, colour) > 150, "{name}: {} pixels", count(&pixels, colour));
    }
    let svg = render_svg(&chart).unwrap();
    for text in ["breast_cancer", "logreg", "diabetes", "lls", "schedule", "notebook", "quartiles", "diverged"] {
        assert!(svg.contains(text), "{text} is not in the SVG");
    }
    // Dropping the divergence removes pixels of its colour: the ∞ median is drawn (as a triangle).
    let mut finite = ratio_chart();
    finite.spreads[2][2] = None;
    let fewer = count(&decode(&render_png(&finite).unwrap()), [44, 160, 44]);
    assert!(fewer < count(&pixels, [44, 160, 44]), "the diverged cell drew nothing");
}

#[test]
fn an_empty_ratio_chart_still_renders() {
    let chart = RatioChart { title: String::new(), members: vec![], methods: vec![], spreads: vec![] };
    assert_eq!(png_size(&render_png(&chart).unwrap()), SIZE);
}

/// Renders a published suite.csv as the suite draws it; with `STEPLENS_SUITE_PICTURE=1` it
/// rewrites that directory's suite.png/.svg (how docs/results were redrawn after the picture
/// changed).
#[test]
fn the_published_suites_render() {
    for dir in ["suite", "suite-mnist"] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/results").join(dir);
        let text = fs::read_to_string(dir.join("suite.csv")).unwrap();
        let rows: Vec<Vec<String>> = text.lines().skip(1).map(|l| l.split(',').map(String::from).collect()).collect();
        let member = |r: &Vec<String>| format!("{}:{}", r[0], r[1]);
        let in_order = |mut v: Vec<String>| {
            let mut seen = std::collections::HashSet::new();
            v.retain(|x| seen.insert(x.clone()));
            v
        };
        let members = in_order(rows.iter().map(member).collect());
        let methods = in_order(rows.iter().filter(|r| r[10] != "constant").map(|r| r[2].clone()).collect());
        let num = |s: &str| if s == "inf" { f64::INFINITY } else { s.parse().unwrap() };
        let spreads = methods
            .iter()
            .map(|m| {
                let cell = |mm: &String| rows.iter().find(|r| &member(r) == mm && &r[2] == m);
                members.iter().map(|mm| cell(mm).map(|r| [num(&r[6]), num(&r[5]), num(&r[7])])).collect()
            })
            .collect();
        let seeds = rows.iter().map(|r| r[3].parse::<usize>().unwrap()).max().unwrap();
        let title = format!("Final loss ÷ tuned constant's, {seeds} seed(s)");
        let chart = RatioChart { title, members, methods, spreads };
        let png = render_png(&chart).unwrap();
        assert_eq!(png_size(&png), SIZE);
        if std::env::var_os("STEPLENS_SUITE_PICTURE").is_some() {
            save(&chart, Some(&dir.join("suite.png")), Some(&dir.join("suite.svg"))).unwrap();
        }
    }
}
