//! JUnit XML for `prsm check --junit FILE`: one test suite per scenario file, one test case per
//! expectation, so CI systems show each claim and the seed that reproduces a failure.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::Finished;
use crate::export::trace_hex;
use crate::terminal::format_value;

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters; drop them.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `errors` are files that could not be checked at all (bad input, a run limit), with the message.
pub fn render(results: &[(PathBuf, u64, Finished)], errors: &[(PathBuf, String)]) -> String {
    let tests: usize = results
        .iter()
        .map(|(_, _, f)| f.verdicts.len().max(1))
        .sum::<usize>()
        + errors.len();
    let failures: usize = results
        .iter()
        .map(|(_, _, f)| f.verdicts.iter().filter(|v| !v.pass).count())
        .sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"prsm check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{}\">",
        errors.len()
    );
    for (file, seed, finished) in results {
        let name = escape(&file.display().to_string());
        let failed = finished.verdicts.iter().filter(|v| !v.pass).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\">",
            finished.verdicts.len().max(1)
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"seed\" value=\"{seed}\"/><property name=\"trace_hash\" value=\"{}\"/></properties>",
            trace_hex(finished.output.trace_hash)
        );
        if finished.verdicts.is_empty() {
            let _ = writeln!(
                out,
                "    <testcase classname=\"{name}\" name=\"run completes\"/>"
            );
        }
        for v in &finished.verdicts {
            let case = escape(&v.expectation);
            if v.pass {
                let _ = writeln!(out, "    <testcase classname=\"{name}\" name=\"{case}\"/>");
            } else {
                let measured = v.actual.map_or("no data".to_owned(), format_value);
                let message = escape(&format!(
                    "measured {measured}; reproduce: prsm run {} --seed {seed}",
                    file.display()
                ));
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{name}\" name=\"{case}\">\n      <failure message=\"{message}\">{message}</failure>\n    </testcase>"
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    for (file, message) in errors {
        let name = escape(&file.display().to_string());
        let _ = writeln!(
            out,
            "  <testsuite name=\"{name}\" tests=\"1\" failures=\"0\" errors=\"1\">\n    <testcase classname=\"{name}\" name=\"scenario runs\">\n      <error message=\"{}\">{}</error>\n    </testcase>\n  </testsuite>",
            escape(message.lines().next().unwrap_or_default()),
            escape(message)
        );
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a < b && c > \"d\" 'e'\u{1}"),
            "a &lt; b &amp;&amp; c &gt; &quot;d&quot; &apos;e&apos;"
        );
    }
}
