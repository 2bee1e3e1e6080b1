//! Whatever egui paints, the SVG is well-formed XML with finite numbers: shapes at any
//! coordinates (NaN and infinity included), text with any characters, pictures of any size
//! and crop, clip rectangles of any kind.

use std::sync::Arc;

use dynapviz_viewer::svg::{Texture, document};
use egui::epaint::{
    CircleShape, ClippedShape, CornerRadius, EllipseShape, Mesh, QuadraticBezierShape, RectShape, Shape, TextShape, TextureId,
};
use egui::{Color32, Pos2, Rect, Stroke, Vec2, pos2};
use proptest::prelude::*;

fn coord() -> impl Strategy<Value = f32> {
    prop_oneof![8 => -50.0f32..700.0, 1 => Just(f32::NAN), 1 => Just(f32::INFINITY), 1 => Just(-1e30f32)]
}

fn point() -> impl Strategy<Value = Pos2> {
    (coord(), coord()).prop_map(|(x, y)| pos2(x, y))
}

fn color() -> impl Strategy<Value = Color32> {
    any::<[u8; 4]>().prop_map(|[r, g, b, a]| Color32::from_rgba_unmultiplied(r, g, b, a))
}

fn stroke() -> impl Strategy<Value = Stroke> {
    (prop_oneof![Just(0.0f32), 0.1f32..5.0, Just(f32::NAN)], color()).prop_map(|(w, c)| Stroke::new(w, c))
}

/// A shape to paint, text as its string (laid out once a context is at hand).
#[derive(Debug, Clone)]
enum Paint {
    Shape(Shape),
    Text(Pos2, String, f32, Color32, f32),
}

fn paint() -> impl Strategy<Value = Paint> {
    prop_oneof![
        (point(), point(), stroke()).prop_map(|(a, b, s)| Paint::Shape(Shape::line_segment([a, b], s))),
        (prop::collection::vec(point(), 0..12), any::<bool>(), color(), stroke()).prop_map(|(points, closed, fill, s)| {
            Paint::Shape(if closed { Shape::convex_polygon(points, fill, s) } else { Shape::line(points, s) })
        }),
        (point(), point(), any::<[u8; 4]>(), color(), stroke(), prop_oneof![Just(0.0f32), -3.0f32..3.0]).prop_map(
            |(a, b, [nw, ne, sw, se], fill, s, angle)| {
                let mut r = RectShape::new(Rect::from_two_pos(a, b), CornerRadius { nw, ne, sw, se }, fill, s, egui::StrokeKind::Inside);
                r.angle = angle;
                Paint::Shape(Shape::Rect(r))
            }
        ),
        (point(), prop_oneof![0.0f32..40.0, Just(f32::NAN)], color(), stroke())
            .prop_map(|(c, r, fill, s)| Paint::Shape(Shape::Circle(CircleShape { center: c, radius: r, fill, stroke: s }))),
        // Shapes SVG has no element for: drawn as triangles.
        (point(), (coord(), coord()), color(), stroke(), -3.0f32..3.0).prop_map(|(center, (rx, ry), fill, stroke, angle)| {
            Paint::Shape(Shape::Ellipse(EllipseShape { center, radius: Vec2::new(rx, ry), fill, stroke, angle }))
        }),
        ([point(), point(), point()], any::<bool>(), color(), stroke()).prop_map(|(points, closed, fill, s)| {
            // egui fills only a closed curve (it asserts so).
            let fill = if closed { fill } else { Color32::TRANSPARENT };
            Paint::Shape(Shape::QuadraticBezier(QuadraticBezierShape::from_points_stroke(points, closed, fill, s)))
        }),
        (point(), ".{0,24}", 4.0f32..40.0, color(), prop_oneof![Just(0.0f32), -3.0f32..3.0])
            .prop_map(|(at, text, size, c, angle)| Paint::Text(at, text, size, c, angle)),
        (point(), point(), point(), point(), color()).prop_map(|(a, b, uv0, uv1, tint)| {
            let mut mesh = Mesh::with_texture(TextureId::User(1));
            mesh.add_rect_with_uv(Rect::from_two_pos(a, b), Rect::from_two_pos(uv0 / 600.0, uv1 / 600.0), tint);
            Paint::Shape(Shape::mesh(mesh))
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_paint_gives_well_formed_svg(paints in prop::collection::vec((paint(), point(), point()), 0..12), texture in (1usize..9, 1usize..9)) {
        let ctx = egui::Context::default();
        let mut shapes = Vec::new();
        let mut out = ctx.run_ui(egui::RawInput::default(), |ui| {
            for (paint, c0, c1) in &paints {
                let shape = match paint {
                    Paint::Shape(s) => s.clone(),
                    Paint::Text(at, text, size, color, angle) => {
                        let galley: Arc<_> = ui.painter().layout_no_wrap(text.clone(), egui::FontId::proportional(*size), *color);
                        let mut t = TextShape::new(*at, galley, *color).with_angle(*angle);
                        t.underline = Stroke::new(1.0, *color);
                        Shape::Text(t)
                    }
                };
                shapes.push(ClippedShape::new(Rect::from_two_pos(*c0, *c1), shape));
            }
        });
        out.textures_delta.clear();
        let (w, h) = texture;
        let pixels: Vec<Color32> = (0..w * h).map(|i| Color32::from_gray(i as u8)).collect();
        let svg = document(shapes, Vec2::new(640.0, 360.0), Color32::BLACK, |id| {
            (id == TextureId::User(1)).then(|| Texture { size: [w, h], pixels: &pixels, nearest: false })
        });
        let doc = roxmltree::Document::parse(&svg).map_err(|e| TestCaseError::fail(format!("{e}\n{svg}")))?;
        prop_assert_eq!(doc.root_element().tag_name().name(), "svg");
        prop_assert!(!svg.contains("NaN") && !svg.contains("inf"), "{}", svg);
    }
}
