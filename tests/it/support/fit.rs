//! Whether every text of a window fits, read from Slint's own item tree:
//! each visible `Text` is measured by the renderer that draws it (its
//! preferred single-line width, its height when wrapped at its width) and
//! compared with the box the layout gave it and the box that clips it.
//!
//! Design: the testing backend's `ElementHandle` gives an element's size
//! and position but not what its text would need, and a text that
//! `overflow: elide` cuts still has a box that fits. So this reads the
//! items through `slint::private_unstable_api` (Slint's generated code's
//! own door to i-slint-core), which is why Slint is pinned with `=`:
//! `Item::layout_info` is the measurement Slint's layouts use themselves.
#![allow(dead_code)]

use std::pin::Pin;

use slint::private_unstable_api::re_exports::{
    ensure_item_tree_instantiated, BasicBorderRectangle, BorderRectangle, Clip, ComplexText,
    Flickable, Item, ItemRc, Orientation, Rectangle, SimpleText, TextHorizontalAlignment,
    TextVerticalAlignment, TextWrap, WindowInner,
};
use slint::ComponentHandle;

/// Half a pixel of layout rounding, and half of anti-aliasing.
const TOLERANCE: f32 = 1.0;

/// A rectangle in window coordinates (logical pixels).
#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f32,
    y: f32,
    w: f32,
    h: f32,
}

impl Rect {
    fn intersect(self, o: Rect) -> Rect {
        let x = self.x.max(o.x);
        let y = self.y.max(o.y);
        Rect {
            x,
            y,
            w: ((self.x + self.w).min(o.x + o.w) - x).max(0.0),
            h: ((self.y + self.h).min(o.y + o.h) - y).max(0.0),
        }
    }
}

/// Where a text must stay: the window, or the nearest element that clips
/// it (in a scrolling list, a `Flickable`, only sideways: scrolling brings
/// the rest into view); and the nearest box drawn around it (a rectangle
/// with a background or a border: a tile, a card, a button), if any.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    rect: Rect,
    scrolls: bool,
    drawn: Option<Rect>,
}

/// What [`check`] found on one screen.
#[derive(Debug, Default)]
pub struct Report {
    /// How many visible, non-empty texts were measured (a test asserts
    /// that there were some: a screen of none means nothing was checked).
    pub texts: usize,
    /// One line per text that does not fit, saying how.
    pub problems: Vec<String>,
}

/// Measures every visible text of `ui`'s window as it is laid out now.
pub fn check(ui: &impl ComponentHandle) -> Report {
    let tree = WindowInner::from_pub(ui.window()).component();
    ensure_item_tree_instantiated(&tree);
    let root = ItemRc::new_root(tree);
    let size = ui.window().size().to_logical(ui.window().scale_factor());
    let window = Rect {
        x: 0.0,
        y: 0.0,
        w: size.width,
        h: size.height,
    };
    let mut report = Report::default();
    visit(
        &root,
        Bounds {
            rect: window,
            scrolls: false,
            drawn: None,
        },
        &mut report,
    );
    report
}

fn absolute(item: &ItemRc) -> Rect {
    let g = item.geometry();
    let p = item.map_to_window(g.origin);
    Rect {
        x: p.x,
        y: p.y,
        w: g.size.width,
        h: g.size.height,
    }
}

fn visit(item: &ItemRc, bounds: Bounds, report: &mut Report) {
    let rect = absolute(item);
    if let Some(t) = item.downcast::<SimpleText>() {
        let t = t.as_pin_ref();
        let align = (t.horizontal_alignment(), t.vertical_alignment());
        measure(
            t,
            item,
            &t.text(),
            TextWrap::NoWrap,
            align,
            rect,
            bounds,
            report,
        );
    } else if let Some(t) = item.downcast::<ComplexText>() {
        let t = t.as_pin_ref();
        let align = (t.horizontal_alignment(), t.vertical_alignment());
        measure(t, item, &t.text(), t.wrap(), align, rect, bounds, report);
    }
    let mut inner = if item.downcast::<Flickable>().is_some() {
        Bounds {
            rect: rect.intersect(bounds.rect),
            scrolls: true,
            drawn: bounds.drawn,
        }
    } else if item
        .downcast::<Clip>()
        .is_some_and(|c| c.as_pin_ref().clip())
    {
        Bounds {
            rect: rect.intersect(bounds.rect),
            ..bounds
        }
    } else {
        bounds
    };
    if is_drawn_box(item) {
        inner.drawn = Some(rect);
    }
    let mut child = item.first_child();
    while let Some(c) = child {
        visit(&c, inner, report);
        child = c.next_sibling();
    }
}

/// A rectangle that shows: a background or a border that is not
/// transparent.
fn is_drawn_box(item: &ItemRc) -> bool {
    if let Some(r) = item.downcast::<Rectangle>() {
        return !r.as_pin_ref().background().is_transparent();
    }
    if let Some(r) = item.downcast::<BasicBorderRectangle>() {
        let r = r.as_pin_ref();
        return !r.background().is_transparent()
            || (r.border_width().get() > 0.0 && !r.border_color().is_transparent());
    }
    if let Some(r) = item.downcast::<BorderRectangle>() {
        let r = r.as_pin_ref();
        return !r.background().is_transparent()
            || (r.border_width().get() > 0.0 && !r.border_color().is_transparent());
    }
    false
}

#[allow(clippy::too_many_arguments)]
fn measure<T: Item>(
    text: Pin<&T>,
    item: &ItemRc,
    words: &str,
    wrap: TextWrap,
    (h_align, v_align): (TextHorizontalAlignment, TextVerticalAlignment),
    rect: Rect,
    bounds: Bounds,
    report: &mut Report,
) {
    if words.trim().is_empty() || !item.is_visible() {
        return;
    }
    let Some(adapter) = item.window_adapter() else {
        return;
    };
    report.texts += 1;
    let across = Item::layout_info(text, Orientation::Horizontal, -1.0, &adapter, item);
    let down = Item::layout_info(text, Orientation::Vertical, rect.w, &adapter, item);
    let (need_w, longest_word, need_h) = (across.preferred, across.min, down.preferred);
    let mut problems = Vec::new();
    match wrap {
        TextWrap::NoWrap if need_w > rect.w + TOLERANCE => problems.push(format!(
            "cut off: needs {need_w:.0} px wide, has {:.0}",
            rect.w
        )),
        TextWrap::WordWrap if longest_word > rect.w + TOLERANCE => problems.push(format!(
            "a word is cut: the longest needs {longest_word:.0} px, the text has {:.0}",
            rect.w
        )),
        _ => {}
    }
    if need_h > rect.h + TOLERANCE {
        problems.push(format!(
            "lines cut: needs {need_h:.0} px high, has {:.0}",
            rect.h
        ));
    }
    // The ink: as wide and high as the words need (at most the box, where
    // they are cut, as said above), placed by the text's alignment.
    let (ink_w, ink_h) = (need_w.min(rect.w), need_h.min(rect.h));
    let ink_x = match h_align {
        TextHorizontalAlignment::Center => rect.x + (rect.w - ink_w) / 2.0,
        TextHorizontalAlignment::Right | TextHorizontalAlignment::End => rect.x + rect.w - ink_w,
        _ => rect.x,
    };
    let ink_y = match v_align {
        TextVerticalAlignment::Center => rect.y + (rect.h - ink_h) / 2.0,
        TextVerticalAlignment::Bottom => rect.y + rect.h - ink_h,
        _ => rect.y,
    };
    let b = bounds.rect;
    if ink_x < b.x - TOLERANCE || ink_x + ink_w > b.x + b.w + TOLERANCE {
        problems.push(format!(
            "runs out sideways: x {ink_x:.0}..{:.0}, its box {:.0}..{:.0}",
            ink_x + ink_w,
            b.x,
            b.x + b.w
        ));
    }
    if !bounds.scrolls && (ink_y < b.y - TOLERANCE || ink_y + ink_h > b.y + b.h + TOLERANCE) {
        problems.push(format!(
            "runs out of its box: y {ink_y:.0}..{:.0}, its box {:.0}..{:.0}",
            ink_y + ink_h,
            b.y,
            b.y + b.h
        ));
    }
    if let Some(d) = bounds.drawn {
        let outside = ink_x < d.x - TOLERANCE
            || ink_x + ink_w > d.x + d.w + TOLERANCE
            || ink_y < d.y - TOLERANCE
            || ink_y + ink_h > d.y + d.h + TOLERANCE;
        if outside {
            problems.push(format!(
                "runs out of the box drawn around it: ({ink_x:.0}, {ink_y:.0}) {ink_w:.0}x{ink_h:.0}, the box ({:.0}, {:.0}) {:.0}x{:.0}",
                d.x, d.y, d.w, d.h
            ));
        }
    }
    for p in problems {
        report.problems.push(format!(
            "{words:?} at ({:.0}, {:.0}) {:.0}x{:.0}: {p}",
            rect.x, rect.y, rect.w, rect.h
        ));
    }
}
