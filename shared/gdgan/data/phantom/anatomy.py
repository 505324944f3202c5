"""The renderer: analytic soft masks of the anatomy on a (B, H, W) grid, then findings,
confounders (devices) and the film (texture, exposure, grain)."""

from __future__ import annotations

import numpy as np

from gdgan.data.phantom import film_look
from gdgan.data.phantom.config import ANATOMY, FINE_GRID, RADIOGRAPH, TEXTURE_GRID
from gdgan.data.phantom.confounders import add_devices
from gdgan.data.phantom.film_look import FILM
from gdgan.data.phantom.findings import _add_findings
from gdgan.data.phantom.radiograph import look_of
from gdgan.data.phantom.texture import (
    Noise,
    _box_slices,
    _clip01,
    _f32,
    _interp_matrix,
    _s,
    _upsample,
    apply_film,
)


def render(p: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray, noise: Noise, size: int) -> np.ndarray:
    """Render B images (parameters ``p``, each (B,)) on pixel-centre coordinates ``xs``, ``ys``.

    ``xs``/``ys`` are sorted frame coordinates in [-1, 1]; passing one pixel's coordinates
    renders that pixel alone (the benchmark's naive baseline does exactly that and gets the same
    grey values). ``size`` sets the edge softness (about a pixel) so edges are anti-aliased at
    every resolution. Local layers (heart, clavicles, breasts, ...) are evaluated only inside
    their bounding box on the film, which is exact because soft masks are exactly zero a pixel
    beyond their edge. Returns float32 (B, len(ys), len(xs)) in [0, 1].
    """
    A = ANATOMY
    RG = RADIOGRAPH
    rg = look_of(p).radiograph  # the radiograph look's anatomy (every other look: as frozen)
    fl = look_of(p).film  # the film look's graded densities (film_look.py) on top of it
    ew = np.float32(2.0 / size)  # one pixel in frame units
    inv_ew = np.float32(1.0) / (ew * A.edge_px)
    margin = 3.0 * float(ew)
    xs = _f32(xs)
    ys = _f32(ys)

    def c(name: str) -> np.ndarray:
        return p[name][:, None, None]

    # Patient placement: rotation, shift and zoom applied to the sampling grid.
    rot, zoom = p["rot"].astype(np.float64), p["zoom"].astype(np.float64)
    cos_r, sin_r = np.cos(rot), np.sin(rot)
    cr, sr = _f32(cos_r / zoom)[:, None, None], _f32(sin_r / zoom)[:, None, None]
    xsft = xs[None, None, :] - c("shift_x")
    ysft = ys[None, :, None] - c("shift_y")
    X = cr * xsft + sr * ysft
    Y = cr * ysft - sr * xsft
    AX = np.abs(X)

    zc, zs = zoom * cos_r, zoom * sin_r
    sx64, sy64 = p["shift_x"].astype(np.float64), p["shift_y"].astype(np.float64)

    def flat(v: np.ndarray | float) -> np.ndarray | float:
        return v if isinstance(v, float) else np.asarray(v, dtype=np.float64).reshape(-1)

    def box(
        xl: np.ndarray | float, xh: np.ndarray | float, yl: np.ndarray | float, yh: np.ndarray | float
    ) -> tuple[slice, slice, slice]:
        """(all images, rows, cols) of the film covering the patient-frame box [xl, xh] × [yl, yh].

        The film is a rotation + zoom + shift of the patient frame, so a box's extremes lie at
        its corners: a few (B,) operations instead of a search over pixels."""
        xl, xh, yl, yh = flat(xl), flat(xh), flat(yl), flat(yh)
        sxl, sxh, syl, syh = zs * xl, zs * xh, zs * yl, zs * yh
        rows = _box_slices(
            ys, sy64 + np.minimum(sxl, sxh) + zc * yl, sy64 + np.maximum(sxl, sxh) + zc * yh, margin
        )
        cols = _box_slices(
            xs, sx64 + zc * xl - np.maximum(syl, syh), sx64 + zc * xh - np.minimum(syl, syh), margin
        )
        return slice(None), rows, cols

    tw, lung_len, y_apex = c("tw"), c("lung_len"), c("y_apex")
    y_cp = y_apex + lung_len  # costophrenic angles
    ap = c("ap")
    big = 4.0  # beyond the frame, in patient-frame units (for boxes open on a side)

    # ---- body outline: neck, sloping shoulders, trunk ---------------------------------------------
    if rg:
        # narrower neck, shoulders meeting the trunk lower (dark top corners), flanks widest at
        # mid-chest
        neck = RG.neck_half_width * c("neck_scale")
        drop, span = RG.shoulder_drop - c("shoulder_shift"), RG.shoulder_span
        if fl:  # shoulders higher: the shoulder girdle fills the film's top corners
            drop = drop - FILM.shoulder_up
        # (a slow function of height: taken on the film's rows, un-tilted, (B, H, 1), to save
        # full-size passes; the patient's tilt of at most ~6° moves it by well under a pixel)
        y_rows = (ys[None, :, None] - c("shift_y")) / c("zoom")
        flank = (y_rows - (y_apex + 0.55 * lung_len)) * (1.0 / lung_len)
        flank *= flank
        flank *= -RG.flank_curve
        flank += 1.0
        extra_scale = FILM.body_extra_scale if fl else RG.body_extra_scale
        bw_trunk = (tw + c("body_extra") * extra_scale) * flank
    else:
        neck, drop, span = A.neck_half_width, A.shoulder_drop, A.shoulder_span
        bw_trunk = tw + c("body_extra")
    tt = _clip01((Y - (y_apex - drop)) * (1.0 / span))
    bw = neck + (bw_trunk - neck) * (tt * (2.0 - tt))  # rounded shoulders
    if fl:  # a round body: soft outline, tissue fading out towards the skin
        body = _s((bw - AX) * (inv_ew * np.float32(FILM.body_soft)))
        rel = np.minimum(AX / bw, 1.0)
        D = film_look.body_tissue(body, rel, A.tissue, A.tissue_centre)
    else:
        body = _s((bw - AX) * inv_ew)
        rel = np.minimum(AX / bw, 1.0)
        D = body * (A.tissue + A.tissue_centre * (1.0 - rel * rel))
    if rg:  # thinner soft tissue over the shoulders than over the trunk
        shb = box(-big, big, -big, y_apex + 0.3)
        y_rows = (ys[None, shb[1], None] - c("shift_y")) / c("zoom")  # (B, h, 1), un-tilted
        D[shb] *= 1.0 - RG.shoulder_thin * _clip01((y_apex + 0.3 - y_rows) * (1.0 / 0.4))

    # smooth noise field (lung markings, bowel gas; the film look's abdomen)
    tex = _upsample(noise.texture, _interp_matrix(ys, TEXTURE_GRID), _interp_matrix(xs, TEXTURE_GRID))

    # ---- diaphragm domes (right = image left, higher; atelectasis lifts its side) --------------------
    dome_h = c("dome_h")
    atel_side = np.sign(np.nan_to_num(c("atel_x")))
    atel_lift = np.nan_to_num(c("atel_lift"))
    dome_top_l = y_cp - dome_h - atel_lift * (atel_side > 0)  # image right (patient left)
    dome_top_r = y_cp - dome_h - c("dome_right_up") - atel_lift * (atel_side < 0)
    leftf = (X < 0).astype(np.float32)
    dome_top = dome_top_l + (dome_top_r - dome_top_l) * leftf
    xdc = A.dome_peak * tw
    q = (AX - xdc) * (1.0 / (tw - xdc))
    q = np.maximum(q, q * (RG.dome_round if rg else A.dome_medial_flat))  # flatter medially (q < 0)
    y_dome = dome_top + (y_cp - dome_top) * (q * q)
    above = _s((y_dome - Y) * inv_ew)
    abd = box(-big, big, np.minimum(dome_top_l, dome_top_r), big)
    below = (1.0 - above[abd]) * body[abd]
    if rg:  # the abdomen's density fades beyond the rib cage (no dome line across the flanks)
        # (both slow profiles taken on the film's rows and columns, un-tilted: cheap (B, h, 1)
        # and (B, 1, w) factors instead of full-size passes)
        y_rows = (ys[None, abd[1], None] - c("shift_y")) / c("zoom")
        x_cols = np.abs(xs[None, None, abd[2]] - c("shift_x")) / c("zoom")
        if fl:  # denser than the heart, densest low down and under the right dome (liver)
            deep = FILM.abdomen + FILM.abdomen_low * _clip01((y_rows - y_cp) * 2.0)
            xr = (xs[None, None, abd[2]] - c("shift_x")) / c("zoom")
            deep = deep * (1.0 + FILM.liver * _clip01(0.5 - xr * 4.0))
        else:
            deep = RG.abdomen + RG.abdomen_low * _clip01((y_rows - y_cp) * 2.0)
        belly = below * deep
        belly *= _clip01((1.15 - x_cols / tw) * 4.0)
        if fl:  # bowel contents: the abdomen is mottled, not one flat tone
            belly *= 1.0 + FILM.abdomen_mottle * tex[abd]
        D[abd] += belly
    else:
        D[abd] += A.abdomen * below

    # ---- lungs inside the rib cage ---------------------------------------------------------------------
    t = np.maximum((y_cp - Y) * (1.0 / lung_len), 0.0)
    t2 = t * t
    rx = AX * (1.0 / tw)
    if rg:  # broad apices: the lung keeps its width higher up
        rc = rx * rx + t2 * t * (RG.apex_t3 + (1.0 - RG.apex_t3) * t2)
    else:
        rc = rx * rx + t2 * (A.apex_round + (1.0 - A.apex_round) * t2)  # < 1 inside the cage
    depth = _clip01(1.0 - rc)
    cage = np.minimum(depth * (tw * 0.5 * inv_ew * (FILM.cage_soft if fl else 1.0)), 1.0)
    cage_above = cage * above

    # ---- heart (rotated ellipse; horizontal extent = CTR × thoracic width) ----------------------------
    heart_w = c("ctr") * 2.0 * tw
    phi = c("heart_tilt")
    cphi, sphi = np.cos(phi), np.sin(phi)
    asp = c("heart_aspect")
    ext = np.sqrt(cphi * cphi + asp * asp * sphi * sphi)  # horizontal half-extent for a = 1
    a = heart_w * 0.5 / ext
    b = a * asp
    vert = np.sqrt(a * a * sphi * sphi + b * b * cphi * cphi)
    # more of the heart lies to the patient's left (image right); rotation about the long axis
    # moves the heart and mediastinum off the spine
    ash = c("axial_shift")
    hx = (RG.heart_left_shift if rg else A.heart_left_shift) * heart_w + ash
    # The widest points of a tilted ellipse lie at different heights (clinically the CTR adds the
    # right and left extents measured at their own levels); the lower of the two sits
    # ``heart_clear`` above the left dome so the whole CTR stays visible, the rest of the heart
    # sinks into the diaphragm shadow.
    dy_ext = (a * a - b * b) * sphi * cphi / (0.5 * heart_w)
    hy = dome_top_l - np.abs(dy_ext) - A.heart_clear
    solid = np.zeros_like(D)
    if rg:
        hb = _heart_borders(
            X, Y, above, D, solid, heart_w, hx, ash, y_apex, lung_len, dome_top_l, dome_top_r, box, inv_ew, fl
        )
    else:
        hb = box(hx - 0.5 * heart_w, hx + 0.5 * heart_w, hy - vert, hy + vert)
        dx, dy = X[hb] - hx, Y[hb] - hy
        u = (dx * cphi + dy * sphi) / a
        v = (dy * cphi - dx * sphi) / b
        heart = _s((1.0 - np.sqrt(u * u + v * v)) * (b * inv_ew))
        solid[hb] = heart
        D[hb] += A.heart_density * heart * above[hb]

    # ---- mediastinum, trachea, aortic knob ----------------------------------------------------------------
    # the upper mediastinum widens smoothly into the cardiac silhouette (no "ball on a stick")
    # (its centre drifts towards the heart's, so the left border runs knob -> ventricle smoothly;
    # it stays inside the heart's horizontal extent, so the CTR is still the ellipse's)
    med_top = RG.med_half_width if rg else A.med_half_width
    med_low = np.maximum(A.med_into_heart * 0.5 * heart_w, med_top)
    m0 = 0.015 + ash
    if rg:  # a straight upper mediastinum; the heart's own borders take over below it
        mb = box(m0 - med_top, m0 + med_top, -big, big)
        med = _s((med_top - np.abs(X[mb] - m0)) * (inv_ew * np.float32(FILM.med_soft) if fl else inv_ew))
    else:
        mb = box(m0 - med_low, hx + med_low, -big, big)
        grow = _clip01((Y[mb] - (hy - A.med_grow_start * vert)) * (1.0 / (A.med_grow_span * vert)))
        grow = grow * (2.0 - grow)
        med_w = med_top + (med_low - med_top) * grow
        med_c = m0 + (hx - m0) * grow
        med = _s((med_w - np.abs(X[mb] - med_c)) * inv_ew)
    np.maximum(solid[mb], med, out=solid[mb])
    kx, ky = A.knob_x * tw + ash, y_apex + A.knob_y * lung_len
    kb = box(kx - A.knob_r, kx + A.knob_r, ky - A.knob_r, ky + A.knob_r)
    knob = _s((A.knob_r - np.sqrt((X[kb] - kx) ** 2 + (Y[kb] - ky) ** 2)) * inv_ew)
    np.maximum(solid[kb], knob, out=solid[kb])
    if rg:
        lung = cage_above * (1.0 - solid * (FILM.heart_opacity if fl else RG.heart_opacity))
    else:
        lung = cage_above * (1.0 - solid)
    y_car = y_apex + A.carina * lung_len
    t0 = 0.01 + ash
    trb = box(t0 - A.trachea_half_width, t0 + A.trachea_half_width, -big, y_car)
    trachea = _s((A.trachea_half_width - np.abs(X[trb] - t0[trb[0]])) * inv_ew) * _s(
        (y_car - Y[trb]) * inv_ew
    )
    D[trb] -= (RG.trachea if rg else A.trachea) * trachea

    # ---- lung density: air, thicker in the middle of each lung, hilar vessels ------------------------
    # Evaluated inside the lung box only: ``lung`` is exactly 0 beyond |X| = tw, above the apex
    # and below the costophrenic angles (the domes never drop below them).
    lb = box(-tw, tw, y_apex, y_cp)
    texl = tex[lb]
    hdy = Y[lb] - (y_apex + A.hilum_y * lung_len)
    hd2 = (AX[lb] - A.hilum_x * tw) ** 2 + hdy * hdy
    hilar = 1.0 / (1.0 + hd2 * A.hilum_falloff)
    # lung markings: vessels radiating from each hilum (spokes in the direction sin(angle) =
    # dy / r, broken up by the texture field), fading towards the periphery, plus hilar shadows
    spokes = np.cos(hdy * (A.vessel_spokes / np.sqrt(hd2 + 1e-4)) + c("vessel_phase"))
    vessels = _clip01(spokes * 3.0 - 2.0 + 0.6 * texl)
    mbase, vess = (RG.marking_base, RG.vessel) if rg else (A.marking_base, A.vessel)
    if fl:
        vess = FILM.vessel
    # (radiograph look: vessels taper off faster towards the periphery)
    marks_l = mbase * np.maximum(texl, 0.0) + vess * (hilar if rg else np.sqrt(hilar)) * vessels
    if rg:  # compact, bright hila (pulmonary arteries and bronchi) where the vessels start
        hil_c = 1.0 / (1.0 + hd2 * RG.hilum_falloff)
        marks_l = c("mark_amp") * (marks_l + RG.marking_hilar * hil_c)
    else:
        marks_l = c("mark_amp") * (marks_l + A.marking_hilar * hilar)
    if fl:  # lungs brighter towards the periphery and the bases; vessels branching from the hila
        fine = _upsample(noise.fine, _interp_matrix(ys, FINE_GRID), _interp_matrix(xs, FINE_GRID))
        marks_l += c("mark_amp") * film_look.vessel_ridges(fine[lb], hilar)
        y_rows = (ys[None, lb[1], None] - c("shift_y")) / c("zoom")
        air = c("air") * (FILM.air_rim + (1.0 - FILM.air_rim) * np.sqrt(depth[lb]))
        air *= film_look.air_rows(y_rows, y_apex, lung_len)
    else:
        air = c("air") * (A.air_rim + (1.0 - A.air_rim) * np.sqrt(depth[lb]))
    marks = np.zeros_like(D)
    marks[lb] = marks_l
    air_removed = np.zeros_like(D)
    air_removed[lb] = lung[lb] * (air - marks_l)
    D[lb] -= air_removed[lb]

    # ---- bones: spine, ribs, clavicles, scapulae ---------------------------------------------------------
    sw = c("spine_w")
    sb = box(-sw, sw, -big, big)
    vph = (Y[sb] - y_apex) * (1.0 / (A.vertebra * lung_len))
    vmod = 0.6 + 0.8 * np.abs(vph - np.floor(vph) - 0.5)  # vertebral bodies and discs
    D[sb] += (RG.spine if rg else A.spine) * _s((sw - AX[sb]) * inv_ew) * vmod * body[sb]
    if rg:  # pedicles: paired bright ovals at the spine's edges, one per vertebra
        ped = _s((0.5 - np.abs(vph - np.floor(vph) - 0.5) * 2.6) * 2.0) * _s(
            (0.022 - np.abs(AX[sb] - 0.75 * sw)) * inv_ew
        )
        D[sb] += RG.pedicle * ped * body[sb]

    rb = box(-big, big, y_apex - 0.05 * lung_len, y_cp)
    spacing = lung_len * (1.0 / (RG.ribs_per_lung if rg else A.ribs_per_lung))
    rxb = rx[rb]
    rib_d, rib_w, droop = (RG.rib, RG.rib_width, RG.rib_droop) if rg else (A.rib, A.rib_width, A.rib_droop)
    if fl:
        rib_d = RG.rib * FILM.rib_scale
    rise = RG.rib_rise if rg else A.rib_rise
    curve = lung_len * (rxb * (rise + droop * rxb))  # posterior ribs: up, then down laterally
    ph = (Y[rb] - y_apex - curve) * (1.0 / spacing) + c("rib_phase")
    fr = np.abs(ph - np.floor(ph) - 0.5)
    rib_band = _s((rib_w - fr) * (spacing * inv_ew))
    rib_zone = _clip01((1.12 - rc[rb]) * 4.0) * above[rb]
    if rg:  # posterior ribs fading towards the bases (more soft tissue over them there)
        y_rows = (ys[None, rb[1], None] - c("shift_y")) / c("zoom")  # (B, h, 1), un-tilted
        fade = _clip01((y_rows - y_apex) * (1.0 / lung_len))
        fade *= -RG.rib_low_fade
        fade += 1.0
        rib_zone *= fade
        rib_zone *= body[rb]
        hidden = solid[rb] * -A.rib_hidden
        hidden += 1.0
        rib_zone *= hidden
        rib_band *= rib_d
        rib_band *= rib_zone
        D[rb] += rib_band
    else:
        D[rb] += rib_d * rib_band * rib_zone * body[rb] * (1.0 - A.rib_hidden * solid[rb])

    # clavicles: sternal end near the midline, lateral end higher on PA, nearly horizontal on AP
    slope = A.clavicle_slope_pa + (A.clavicle_slope_ap - A.clavicle_slope_pa) * ap
    if rg:
        slope = slope * (RG.clavicle_slope / A.clavicle_slope_pa)
    cl0 = y_apex + (RG.clavicle_y if rg else A.clavicle_y) - A.clavicle_ap_up * ap + slope * 0.10
    cl_end = tw * A.clavicle_len
    th = RG.clavicle_half_thick if rg else A.clavicle_half_thick
    cb = box(-cl_end, cl_end, cl0 - slope * cl_end - th, cl0 - slope * 0.07 + th)
    axc = AX[cb]
    clav = (
        _s((th - np.abs(Y[cb] - (cl0 - slope * axc))) * inv_ew)
        * _s((axc - 0.07) * inv_ew)
        * _s((cl_end - axc) * inv_ew)
    )
    if rg:
        clav *= body[cb]
    D[cb] += (RG.clavicle if rg else A.clavicle) * clav
    if rg:  # arms beside the chest: a dark gap (axilla), then soft tissue with the humerus
        # (drawn upright in film coordinates: a column profile times a row ramp, two cheap
        # products instead of a rotated mask; the patient's tilt is at most ~6°)
        arm_on = np.isfinite(p["arm_gap"])
        if arm_on.any():
            zm, sx, sy = c("zoom"), c("shift_x"), c("shift_y")
            axf = np.abs((xs[None, None, :] - sx) / zm)  # (B, 1, W)
            inner = tw + c("body_extra") * extra_scale + np.nan_to_num(c("arm_gap"), nan=big)
            aw = c("arm_w")
            aew = inv_ew * np.float32(FILM.arm_soft) if fl else inv_ew  # softer arms on the film look
            band = _s((axf - inner) * aew) * _s((inner + aw - axf) * aew)
            bone = _clip01(1.0 - np.abs(axf - inner - 0.45 * aw) * (1.0 / 0.05))
            band *= (RG.arm + RG.humerus * bone) * (FILM.arm_scale if fl else 1.0)
            ramp = _clip01(((ys[None, :, None] - sy) / zm - (y_apex - 0.02)) * 8.0)  # (B, H, 1)
            D += band * ramp
            if fl:  # humeral heads at the top of the arms, in the film's top corners
                _humeral_heads(D, p, xs, ys, tw, y_apex, inv_ew)
    # scapulae: lateral to the lungs on PA (rotated forward), over the upper lung fields on AP
    scx = tw * (A.scapula_x_pa + (A.scapula_x_ap - A.scapula_x_pa) * ap)
    scy = y_apex + A.scapula_y * lung_len
    sch = A.scapula_h * lung_len
    scb = box(-scx - A.scapula_w, scx + A.scapula_w, scy - sch, scy + sch)
    e = ((AX[scb] - scx) * (1.0 / A.scapula_w)) ** 2 + ((Y[scb] - scy) / sch) ** 2
    D[scb] += A.scapula * _s((1.0 - e) * (A.scapula_w * 0.5 * inv_ew)) * body[scb]

    # breast shadows (F only): soft tissue over the lower lung fields with a curved lower border
    fem = np.flatnonzero(p["breast"] > 0)
    if fem.size:
        pf = {k: p[k][fem] for k in ("breast_r", "tw", "y_apex", "lung_len", "breast")}
        twf = pf["tw"][:, None, None]
        br = pf["breast_r"][:, None, None] * twf
        bx = A.breast_x * twf
        by = (pf["y_apex"] + pf["lung_len"])[:, None, None] - A.breast_up
        br_all = c("breast_r") * tw
        by_all = y_cp - A.breast_up
        _, brr, _ = box(-big, big, by_all - br_all, by_all + br_all)
        Xf, Yf = AX[fem, brr], Y[fem, brr]
        be = ((Xf - bx) / (br * 1.2)) ** 2 + ((Yf - by) / br) ** 2
        breast = _clip01((1.0 - be) * 3.0) * _clip01((Yf - by + br) / (1.5 * br))
        D[fem, brr] += (A.breast * pf["breast"][:, None, None]) * breast * body[fem, brr]

    # bowel gas and the gastric bubble under the left hemidiaphragm (image right)
    if fl:
        D[abd] -= FILM.bowel_gas * _clip01(fine[abd] - 1.0) * below
    D[abd] -= A.bowel_gas * _clip01(tex[abd] - 0.6) * below
    gx, gy = 0.42 * tw, dome_top_l + 0.11
    gb = box(gx - 0.10, gx + 0.10, gy - 0.06, gy + 0.06)
    gbd = ((X[gb] - gx) * (1.0 / 0.10)) ** 2 + ((Y[gb] - gy) * (1.0 / 0.06)) ** 2
    D[gb] -= (A.gastric * c("bubble")) * _clip01(1.0 - gbd) * (1.0 - above[gb])

    # ---- findings ------------------------------------------------------------------------------------
    _add_findings(D, p, X, Y, AX, tw, y_cp, rc, lung, cage_above, air_removed, marks, noise, xs, ys, inv_ew)

    # ---- confounders: lines, tubes, pacemakers, ECG electrodes -------------------------------------------
    add_devices(D, p, X, Y, tw, y_apex, lung_len, np.minimum(dome_top_l, dome_top_r), inv_ew)

    # ---- film realism: soft-tissue mottling and fine lung texture (two scales of smooth noise) ----------
    amp = float(p["tex_amp"][0]) if len(p["tex_amp"]) else 0.0
    if amp > 0:
        if not fl:
            fine = _upsample(noise.fine, _interp_matrix(ys, FINE_GRID), _interp_matrix(xs, FINE_GRID))
        D += (amp * A.soft_tissue_texture) * (0.6 * tex + 0.4 * fine) * body
        D += (amp * A.lung_texture) * fine * lung

    # ---- film: response curve, window/level, heel effect, gamma, grain, collimation, markers -------------
    return apply_film(D, p, xs, ys, noise, inv_ew)


def _heart_borders(
    X: np.ndarray,
    Y: np.ndarray,
    above: np.ndarray,
    D: np.ndarray,
    solid: np.ndarray,
    heart_w: np.ndarray,
    hx: np.ndarray,
    ash: np.ndarray,
    y_apex: np.ndarray,
    lung_len: np.ndarray,
    dome_top_l: np.ndarray,
    dome_top_r: np.ndarray,
    box,
    inv_ew: np.float32,
    fl: bool = False,
) -> tuple[slice, slice, slice]:
    """The radiograph look's heart: the cardiac silhouette drawn by its two borders instead of an
    ellipse. The right border is the right atrium, an arc bulging from under the superior vena
    cava to its widest point just above the right dome; the left border is the left ventricle,
    an arc from under the aortic knob (the mediastinum between them makes the concave waist) to
    its widest point just above the left dome, then curving into the apex. The widest points
    are exactly the ellipse's (``hx`` ± ``heart_w`` / 2), so the film's CTR is ``gt_ctr`` as
    before. Adds the heart's density to ``D`` and its mask to ``solid`` (in place); returns the
    box it drew in."""
    A, RG = ANATOMY, RADIOGRAPH
    right, left = hx - 0.5 * heart_w, hx + 0.5 * heart_w  # image-left (negative) and image-right extremes
    mid = 0.015 + ash
    y_l = dome_top_l - RG.heart_clear
    y_r = dome_top_r - RG.heart_clear
    h_l = RG.arc_stretch * np.maximum(y_l - (y_apex + RG.lv_top * lung_len), 0.1)
    h_r = RG.arc_stretch * np.maximum(y_r - (y_apex + RG.ra_top * lung_len), 0.1)
    lv_low = FILM.heart_low if fl else RG.lv_low  # the film look's heart sits on the domes
    low = np.maximum(y_l, y_r) + lv_low
    hb = box(right, left, np.minimum(y_l - h_l, y_r - h_r), low)
    Xh, Yh = X[hb], Y[hb]
    # distance from the widest point along the arc: above it over h, below it over lv_low (the
    # other branch is negative, so the larger of the two is the one that applies)
    tl = np.maximum((y_l - Yh) / h_l, (Yh - y_l) * (1.0 / lv_low))
    tr = np.maximum((y_r - Yh) / h_r, (Yh - y_r) * (1.0 / lv_low))
    med = RG.med_half_width
    if fl:  # the borders rise into the mediastinum's edges, not its midline: the silhouette widens
        # smoothly from the great vessels (no bulb on a stalk); the widest points are unchanged
        base_l, base_r = mid + FILM.heart_base * med, mid - FILM.heart_base * med
        xl = base_l + (left - base_l) * _clip01(1.0 - tl * tl)
        xr = base_r + (right - base_r) * _clip01(1.0 - tr * tr)
    else:
        xl = mid + (left - mid) * _clip01(1.0 - tl * tl)
        xr = mid + (right - mid) * _clip01(1.0 - tr * tr)
    # parabolic arcs: each chamber's border leaves the mediastinum (the LV's at the knob) at an angle
    soft = inv_ew * np.float32(A.edge_px / RG.heart_edge)
    lv = _s((xl - Xh) * soft) * _s((Xh - (mid - med)) * inv_ew)
    ra = _s((Xh - xr) * soft) * _s(((mid + med) - Xh) * inv_ew)
    heart = np.maximum(lv, ra)
    solid[hb] = heart
    if fl:  # thicker at its centre than at its borders: graded inside, the silhouette (and so
        # the CTR) unchanged
        D[hb] += film_look.heart_profile(heart, Xh, hx, heart_w) * above[hb]
    else:
        D[hb] += RG.heart_density * heart * above[hb]
    return hb


def _humeral_heads(
    D: np.ndarray,
    p: dict[str, np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
    tw: np.ndarray,
    y_apex: np.ndarray,
    inv_ew: np.float32,
) -> None:
    """The film look's shoulders on films with the arms in the field: a rounded mass of soft
    tissue at the top of each arm with the humeral head in it (in place, upright in film
    coordinates like the arms), where NIH films show the shoulder joints in the top corners."""
    zm, sx, sy = p["zoom"][:, None, None], p["shift_x"][:, None, None], p["shift_y"][:, None, None]
    on = np.isfinite(p["arm_gap"])[:, None, None]
    r, rs = FILM.humeral_r, FILM.shoulder_r
    cy = y_apex + FILM.humeral_y + p["humeral_dy"][:, None, None]
    lo = float(((cy - rs) * zm + sy).min())
    hi = float(((cy + rs) * zm + sy).max())
    rows = slice(int(np.searchsorted(ys, lo)), int(np.searchsorted(ys, hi, side="right")))
    if rows.stop <= rows.start:
        return
    axf = np.abs((xs[None, None, :] - sx) / zm)  # (B, 1, W)
    yf = (ys[None, rows, None] - sy) / zm  # (B, h, 1)
    dx, dy = axf - (tw + FILM.humeral_x), yf - cy
    d2 = (dx * (1.0 / rs)) ** 2 + (dy * (1.0 / rs)) ** 2
    mass = _clip01(1.0 - d2)
    np.sqrt(mass, out=mass)  # a round limb: projected thickness
    mass *= FILM.shoulder
    d2 = (dx * (1.0 / r)) ** 2 + (dy * (1.0 / r)) ** 2
    head = _clip01((1.0 - d2) * (r * 0.5 * inv_ew))
    head *= FILM.humeral
    mass += head
    mass *= on
    D[:, rows] += mass
