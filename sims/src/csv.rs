//! Reading the bundled comma-separated data files (network edges, replay
//! traces): one record per line, fields trimmed, blank lines and `#`
//! comments skipped, an optional header as the first record.

/// The data records of `text`: (1-based line number, trimmed fields), each
/// with as many fields as `header` names. The first record is a header — and
/// is not returned — when its first field does not parse as a number; with
/// `strict` it must then equal `header`.
pub fn records<'a>(
    text: &'a str,
    header: &'a [&'a str],
    strict: bool,
) -> impl Iterator<Item = Result<(usize, Vec<&'a str>), String>> + 'a {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .filter_map(move |(k, (lineno, line))| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let numeric = f.first().is_some_and(|x| x.parse::<f64>().is_ok());
            if k == 0 && !numeric {
                return (strict && f != header).then(|| {
                    Err(format!(
                        "line {lineno}: header must be {}",
                        header.join(",")
                    ))
                });
            }
            if f.len() != header.len() {
                return Some(Err(format!("line {lineno}: expected {}", header.join(","))));
            }
            Some(Ok((lineno, f)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comments_and_field_counts() {
        let h = ["a", "b"];
        let ok: Vec<_> = records("# c\na,b\n\n1,2\n 3 , 4 \n", &h, true).collect();
        assert_eq!(ok, vec![Ok((4, vec!["1", "2"])), Ok((5, vec!["3", "4"]))]);
        let no_header: Vec<_> = records("1,2\n", &h, true).collect();
        assert_eq!(no_header, vec![Ok((1, vec!["1", "2"]))]);
        assert_eq!(
            records("x,y\n", &h, true).next(),
            Some(Err("line 1: header must be a,b".into()))
        );
        assert_eq!(records("x,y\n1,2\n", &h, false).count(), 1);
        assert_eq!(
            records("1,2,3\n", &h, false).next(),
            Some(Err("line 1: expected a,b".into()))
        );
    }
}
