//! Stroke-width normalisation: a drawing reduced to its one-pixel skeleton and redrawn with a
//! round pen of a chosen width.
//!
//! Ink-box framing scales every drawing to one size, and its strokes with it: a character
//! drawn small comes out with strokes three times as thick as one drawn large, and a network
//! then matches a thick query to a thick candidate of another character. Redrawing the
//! skeleton with a pen sized for the framed image leaves the shape and removes the thickness.

/// Zhang-Suen thinning of a binary `side x side` image (true = ink) to a skeleton one pixel
/// wide, 8-connected, keeping the drawing's topology. Pixels on the border are treated as
/// having background outside the image.
pub fn skeleton(ink: &[bool], side: usize) -> Vec<bool> {
    assert_eq!(ink.len(), side * side, "image size");
    let mut img = ink.to_vec();
    let at = |img: &[bool], x: isize, y: isize| -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < side
            && (y as usize) < side
            && img[y as usize * side + x as usize]
    };
    let mut remove = Vec::new();
    loop {
        let mut changed = false;
        for pass in 0..2 {
            remove.clear();
            for y in 0..side as isize {
                for x in 0..side as isize {
                    if !at(&img, x, y) {
                        continue;
                    }
                    // Neighbours P2..P9, clockwise from north.
                    let p = [
                        at(&img, x, y - 1),
                        at(&img, x + 1, y - 1),
                        at(&img, x + 1, y),
                        at(&img, x + 1, y + 1),
                        at(&img, x, y + 1),
                        at(&img, x - 1, y + 1),
                        at(&img, x - 1, y),
                        at(&img, x - 1, y - 1),
                    ];
                    let b = p.iter().filter(|&&v| v).count();
                    if !(2..=6).contains(&b) {
                        continue;
                    }
                    let a = (0..8).filter(|&i| !p[i] && p[(i + 1) % 8]).count();
                    if a != 1 {
                        continue;
                    }
                    let (n, e, s, w) = (p[0], p[2], p[4], p[6]);
                    // Pass 0 keeps a pixel with its east and south neighbours and one of north
                    // or west (P2.P4.P6 or P4.P6.P8 set); pass 1 the mirror case.
                    let keep = if pass == 0 {
                        e && s && (n || w)
                    } else {
                        n && w && (e || s)
                    };
                    if !keep {
                        remove.push(y as usize * side + x as usize);
                    }
                }
            }
            for &i in &remove {
                img[i] = false;
            }
            changed |= !remove.is_empty();
        }
        if !changed {
            return img;
        }
    }
}

/// Draws a round pen of `radius` pixels along every skeleton pixel, anti-aliased: a pixel's
/// ink is `radius + 0.5` minus its centre's distance to the nearest skeleton pixel's centre,
/// clamped to `[0, 1]`, so a line's cross-section carries about `2 * radius` of ink even when
/// the radius is a pixel or two (the skeleton itself is always full ink).
pub fn redraw(skeleton: &[bool], side: usize, radius: f32) -> Vec<f32> {
    assert_eq!(skeleton.len(), side * side, "image size");
    let radius = radius.max(0.0);
    let mut out = vec![0.0f32; side * side];
    let reach = (radius + 0.5).ceil() as isize;
    let disk: Vec<(isize, isize, f32)> = (-reach..=reach)
        .flat_map(|dy| (-reach..=reach).map(move |dx| (dx, dy)))
        .map(|(dx, dy)| {
            let d = ((dx * dx + dy * dy) as f32).sqrt();
            // The centre is the skeleton pixel itself: full ink whatever the radius.
            let v = if d == 0.0 {
                1.0
            } else {
                (radius + 0.5 - d).clamp(0.0, 1.0)
            };
            (dx, dy, v)
        })
        .filter(|&(_, _, v)| v > 0.0)
        .collect();
    let n = side as isize;
    for (i, _) in skeleton.iter().enumerate().filter(|(_, s)| **s) {
        let (x, y) = ((i % side) as isize, (i / side) as isize);
        for &(dx, dy, v) in &disk {
            let (px, py) = (x + dx, y + dy);
            if (0..n).contains(&px) && (0..n).contains(&py) {
                let o = &mut out[(py * n + px) as usize];
                *o = o.max(v);
            }
        }
    }
    out
}

/// A binary drawing's pen width in pixels, twice its ink area over its perimeter (the edges
/// between ink and background, 4-neighbour, the image's border counting as background): a
/// stroke `w` pixels wide and much longer measures about `w`. `None` when there is no ink.
pub fn pen_width(ink: &[bool], w: usize, h: usize) -> Option<f32> {
    assert_eq!(ink.len(), w * h, "image size");
    let at = |x: usize, y: usize| ink[y * w + x];
    let (mut area, mut perimeter) = (0u64, 0u64);
    for y in 0..h {
        for x in 0..w {
            if !at(x, y) {
                continue;
            }
            area += 1;
            perimeter += u64::from(x == 0 || !at(x - 1, y))
                + u64::from(x + 1 == w || !at(x + 1, y))
                + u64::from(y == 0 || !at(x, y - 1))
                + u64::from(y + 1 == h || !at(x, y + 1));
        }
    }
    (area > 0).then(|| 2.0 * area as f32 / perimeter as f32)
}

/// The 8-connected pieces of ink of a binary `w x h` image: each pixel's piece (`None` for
/// background) and each piece's size in pixels.
pub fn ink_pieces(ink: &[bool], w: usize, h: usize) -> (Vec<Option<u32>>, Vec<usize>) {
    assert_eq!(ink.len(), w * h, "image size");
    let mut piece = vec![None; w * h];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !ink[start] || piece[start].is_some() {
            continue;
        }
        let id = sizes.len() as u32;
        let mut size = 0;
        piece[start] = Some(id);
        stack.push(start);
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let n = ny * w + nx;
                    if ink[n] && piece[n].is_none() {
                        piece[n] = Some(id);
                        stack.push(n);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (piece, sizes)
}

/// Ink with specks removed, and its pen width ([`pen_width`]). The pen is measured on the
/// pieces of at least 1% of the largest piece's size; a piece is a speck, and dropped, when it
/// is both smaller than a quarter of the pen's width squared (a dot much smaller than the pen
/// could make) and smaller than `cell` pixels (the area that becomes one pixel of the image
/// the drawing is scaled to, so that nothing is dropped from a drawing already at that size).
/// The dust of a scan then neither counts as ink nor makes the pen look fine. `None` when
/// there is no ink.
pub fn despeckle(ink: &[bool], w: usize, h: usize, cell: f32) -> Option<(Vec<bool>, f32)> {
    let (piece, sizes) = ink_pieces(ink, w, h);
    let largest = *sizes.iter().max()?;
    let keep_for_pen = |p: u32| sizes[p as usize] * 100 >= largest;
    let main: Vec<bool> = piece.iter().map(|p| p.is_some_and(keep_for_pen)).collect();
    let pen = pen_width(&main, w, h)?;
    let speck = (0.25 * pen * pen).min(cell);
    let kept = piece
        .iter()
        .map(|p| p.is_some_and(|p| sizes[p as usize] as f32 >= speck))
        .collect();
    Some((kept, pen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(side: usize, x0: usize, y0: usize, w: usize, h: usize) -> Vec<bool> {
        let mut img = vec![false; side * side];
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img[y * side + x] = true;
            }
        }
        img
    }

    #[test]
    fn a_thick_bar_thins_to_a_line_one_pixel_wide_and_as_long() {
        // A 30 x 7 bar: its skeleton is one horizontal line through the middle row.
        let side = 40;
        let s = skeleton(&rect(side, 5, 10, 30, 7), side);
        let pixels: Vec<(usize, usize)> = (0..side * side)
            .filter(|&i| s[i])
            .map(|i| (i % side, i / side))
            .collect();
        assert!(pixels.iter().all(|&(_, y)| y == 13), "{pixels:?}");
        let (min_x, max_x) = (
            pixels.iter().map(|p| p.0).min().unwrap(),
            pixels.iter().map(|p| p.0).max().unwrap(),
        );
        // Each row of the line is there, from near one end to near the other.
        assert_eq!(pixels.len(), max_x - min_x + 1);
        assert!(min_x <= 9 && max_x >= 30, "{min_x}..{max_x}");
    }

    #[test]
    fn thin_lines_and_empty_images_are_left_alone() {
        let side = 20;
        let line = rect(side, 2, 5, 15, 1);
        assert_eq!(skeleton(&line, side), line);
        assert_eq!(skeleton(&[false; 400], side), vec![false; 400]);
    }

    #[test]
    fn a_ring_keeps_its_hole() {
        // A square ring 3 px thick thins to a closed loop: the hole survives.
        let side = 30;
        let mut ring = rect(side, 5, 5, 20, 20);
        for y in 8..22 {
            for x in 8..22 {
                ring[y * side + x] = false;
            }
        }
        let s = skeleton(&ring, side);
        assert!(!s[15 * side + 15], "the hole filled");
        // The loop crosses the middle row twice, left and right of the hole.
        let row: Vec<usize> = (0..side).filter(|&x| s[15 * side + x]).collect();
        assert_eq!(row.len(), 2, "{row:?}");
        assert!(row[0] < 8 && row[1] > 21, "{row:?}");
    }

    #[test]
    fn pen_width_is_twice_the_area_over_the_perimeter() {
        // A 100 x 4 bar: area 400, perimeter 2 * (100 + 4) = 208.
        let (w, h) = (110, 10);
        let bar: Vec<bool> = (0..w * h)
            .map(|i| (5..105).contains(&(i % w)) && (3..7).contains(&(i / w)))
            .collect();
        let pen = pen_width(&bar, w, h).unwrap();
        assert!((pen - 800.0 / 208.0).abs() < 1e-6, "{pen}");
        // The image's border counts as background: the same bar along the top edge.
        let top: Vec<bool> = (0..w * h)
            .map(|i| (5..105).contains(&(i % w)) && i / w < 4)
            .collect();
        assert_eq!(pen_width(&top, w, h), Some(pen));
        // A single pixel: area 1, perimeter 4.
        let mut dot = vec![false; 9];
        dot[4] = true;
        assert_eq!(pen_width(&dot, 3, 3), Some(0.5));
        assert_eq!(pen_width(&[false; 9], 3, 3), None);
    }

    #[test]
    fn ink_falls_into_8_connected_pieces() {
        // A bar, a diagonal pair touching only at corners (one piece), and a lone pixel.
        let (w, h) = (8, 5);
        let mut ink = vec![false; w * h];
        for i in [0, 1, 2, 8 + 5, 16 + 6, 32 + 7] {
            ink[i] = true;
        }
        let (piece, sizes) = ink_pieces(&ink, w, h);
        assert_eq!(sizes, vec![3, 2, 1]);
        assert_eq!(piece[0], Some(0));
        assert_eq!(piece[2], Some(0));
        assert_eq!((piece[13], piece[22]), (Some(1), Some(1)));
        assert_eq!(piece[39], Some(2));
        assert_eq!(piece[3], None);
    }

    #[test]
    fn specks_go_when_smaller_than_the_pen_and_a_cell() {
        // A 60 x 4 bar with a 2 x 2 dot and single pixels around it. The pen is measured on
        // the bar and the dot (each at least 1% of the bar): 2 * 244 / (128 + 8), so a speck
        // is under 0.25 * 3.59^2 = 3.2 px.
        let (w, h) = (70, 20);
        let mut ink = vec![false; w * h];
        for y in 8..12 {
            for x in 5..65 {
                ink[y * w + x] = true;
            }
        }
        for (x, y) in [(2, 2), (3, 2), (2, 3), (3, 3), (40, 1), (66, 18)] {
            ink[y * w + x] = true;
        }
        let (kept, pen) = despeckle(&ink, w, h, 100.0).unwrap();
        assert!((pen - 488.0 / 136.0).abs() < 1e-6, "{pen}");
        // The 2 x 2 dot (4 px) stays; the single pixels go.
        assert_eq!(kept.iter().filter(|&&v| v).count(), 240 + 4);
        assert!(kept[2 * w + 2] && !kept[w + 40] && !kept[18 * w + 66]);
        // At a cell of one pixel (a drawing already at its final size) nothing goes.
        let (kept, _) = despeckle(&ink, w, h, 1.0).unwrap();
        assert_eq!(kept, ink);
        assert!(despeckle(&vec![false; w * h], w, h, 1.0).is_none());
    }

    #[test]
    fn redrawing_a_one_pixel_line_gives_the_pen_width() {
        let side = 30;
        let line = rect(side, 5, 15, 20, 1);
        // Radius 2: full ink up to 1.5 px from the line, half at 2 px, none at 3.
        let out = redraw(&line, side, 2.0);
        let column: Vec<f32> = (12..=18).map(|y| out[y * side + 15]).collect();
        assert_eq!(column, vec![0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]);
        // The cross-section carries 2 * radius of ink, for a fractional radius too.
        let r = 1.3;
        let wide = redraw(&line, side, r);
        let section: f32 = (0..side).map(|y| wide[y * side + 15]).sum();
        assert!((section - 2.0 * r).abs() < 1e-5, "{section}");
        // The pen is round: past the line's end it reaches along the axis, less off it.
        // (The line's last pixel is x = 24.)
        assert_eq!(out[15 * side + 25], 1.0);
        assert_eq!(out[15 * side + 26], 0.5);
        assert_eq!(out[15 * side + 27], 0.0);
        assert_eq!(out[17 * side + 26], 0.0);
        // A radius of zero draws the skeleton itself.
        let thin = redraw(&line, side, 0.0);
        let line_f: Vec<f32> = line.iter().map(|&b| b as u8 as f32).collect();
        assert_eq!(thin, line_f);
    }
}
