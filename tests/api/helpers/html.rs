//! Reading signpost's pages and fragments as a browser parses them (`scraper`, on html5ever):
//! attributes come back decoded, and any markup the server may send parses, well formed or not.

use scraper::{ElementRef, Html, Selector};

/// A CSS selector; panics on a malformed one (a mistake in the test, not in the page).
pub fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("bad selector {css:?}: {e}"))
}

/// A parsed page (`Doc::page`) or partial (`Doc::fragment`).
pub struct Doc(Html);

impl Doc {
    pub fn page(html: &str) -> Self {
        Self(Html::parse_document(html))
    }

    pub fn fragment(html: &str) -> Self {
        Self(Html::parse_fragment(html))
    }

    /// Every element matching `css`, in document order.
    pub fn all(&self, css: &str) -> Vec<ElementRef<'_>> {
        self.0.select(&selector(css)).collect()
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<ElementRef<'_>> {
        self.0.select(&selector(css)).next()
    }

    /// The first element matching `css`; panics with the selector when there is none.
    pub fn one(&self, css: &str) -> ElementRef<'_> {
        self.find(css)
            .unwrap_or_else(|| panic!("no element matches {css:?}"))
    }

    /// Attribute `name` of the first element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css)?.attr(name).map(str::to_owned)
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> Option<String> {
        self.find(css).map(|e| text(&e))
    }

    /// How many elements match `css`.
    pub fn count(&self, css: &str) -> usize {
        self.0.select(&selector(css)).count()
    }

    /// The form controls of the whole document or fragment, as [`fields`] reads them.
    pub fn fields(&self) -> Vec<(String, String)> {
        fields(self.0.root_element())
    }
}

/// The text of an element and its descendants.
pub fn text(e: &ElementRef<'_>) -> String {
    e.text().collect()
}

/// What a browser submits for the named controls under `scope`, in document order, up to the
/// first file input (signpost's forms post the file last; the caller adds it). Disabled
/// controls, unchecked boxes and buttons submit nothing; a select submits its selected option,
/// or its first one when none is.
pub fn fields(scope: ElementRef<'_>) -> Vec<(String, String)> {
    let option = selector("option");
    let mut out = Vec::new();
    for control in scope.select(&selector("input[name], select[name], textarea[name]")) {
        if control.attr("disabled").is_some() {
            continue;
        }
        let name = control.attr("name").unwrap_or_default().to_owned();
        match control.value().name() {
            "select" => {
                let options: Vec<ElementRef<'_>> = control.select(&option).collect();
                let chosen = options
                    .iter()
                    .find(|o| o.attr("selected").is_some())
                    .or(options.first());
                if let Some(o) = chosen {
                    let value = o.attr("value").map_or_else(|| text(o), str::to_owned);
                    out.push((name, value));
                }
            }
            "textarea" => out.push((name, text(&control))),
            _ => match control
                .attr("type")
                .unwrap_or("text")
                .to_ascii_lowercase()
                .as_str()
            {
                "file" => break,
                "submit" | "button" | "reset" | "image" => {}
                "checkbox" | "radio" if control.attr("checked").is_none() => {}
                _ => out.push((name, control.attr("value").unwrap_or_default().to_owned())),
            },
        }
    }
    out
}

/// The page's upload form (`#formBlob`) as a browser without JavaScript submits it: its
/// action, and the fields before the file input, in order.
pub fn page_form(html: &str) -> (String, Vec<(String, String)>) {
    let doc = Doc::page(html);
    let form = doc.one("form#formBlob");
    let action = form.attr("action").expect("the form has an action");
    (action.to_owned(), fields(form))
}

/// The fields of an image-meta fragment, in order: what the page's script puts in its form.
pub fn fragment_fields(fragment: &str) -> Vec<(String, String)> {
    Doc::fragment(fragment).fields()
}

/// The stable code of an HTML error, page or fragment: the `data-code` of its alert.
pub fn error_code(html: &str) -> Option<String> {
    Doc::page(html).attr("[role=alert][data-code]", "data-code")
}

#[test]
fn fields_read_markup_as_a_browser_does() {
    // Unquoted, single-quoted and valueless attributes, entities, a stray `=`, a disabled
    // control, an unchecked box, a select without a selected option, and a field after the file.
    let html = r#"<form id="formBlob" action='/signpost?a=1&amp;b=2'>
        <input type=hidden name=key value=uploads/x.png>
        <input type="hidden" name="x-amz-meta-filename" value="&lt;a&gt; &#34;b&#34;" =>
        <input name="off" value="1" disabled><input type="checkbox" name="box" value="1">
        <select name="Content-Type"><option value="image/png">PNG<option value="image/gif">GIF</select>
        <input type="file" name="file"><input name="after" value="x">
    </form>"#;
    let (action, fields) = page_form(html);
    assert_eq!(action, "/signpost?a=1&b=2");
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("key", "uploads/x.png"),
            ("x-amz-meta-filename", "<a> \"b\""),
            ("Content-Type", "image/png"),
        ]
    );
}
