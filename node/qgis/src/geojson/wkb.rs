//! WKB (ISO or 2.5D, either byte order) read into GeoJSON geometry objects, written as GDAL
//! lays them out; curves and anything malformed are [`Unsupported`] (left to GDAL).

use super::{Unsupported, number};

/// WKB (ISO or 2.5D, either byte order) as a GeoJSON geometry object.
pub fn geometry(wkb: &[u8], out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let mut reader = Wkb { bytes: wkb, at: 0 };
    reader.geometry(out)?;
    Ok(())
}

struct Wkb<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// A geometry's header: its base type (1-7) and whether it has Z and M.
struct Header {
    little: bool,
    base: u32,
    z: bool,
    m: bool,
}

impl Wkb<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Unsupported> {
        let end = self.at + N;
        let bytes = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| Unsupported("truncated WKB".into()))?;
        self.at = end;
        Ok(bytes.try_into().expect("N bytes"))
    }

    /// The next N bytes in little-endian order, whatever the geometry's byte order.
    fn little_endian<const N: usize>(&mut self, little: bool) -> Result<[u8; N], Unsupported> {
        let mut bytes = self.take::<N>()?;
        if !little {
            bytes.reverse();
        }
        Ok(bytes)
    }

    fn u32(&mut self, little: bool) -> Result<u32, Unsupported> {
        self.little_endian(little).map(u32::from_le_bytes)
    }

    fn f64(&mut self, little: bool) -> Result<f64, Unsupported> {
        self.little_endian(little).map(f64::from_le_bytes)
    }

    fn header(&mut self) -> Result<Header, Unsupported> {
        let little = match self.take::<1>()? {
            [0] => false,
            [1] => true,
            [b] => return Err(Unsupported(format!("WKB byte order {b}"))),
        };
        let code = self.u32(little)?;
        let flat = code & 0x8000_0000 == 0;
        let (base, z, m) = if flat {
            (
                code % 1000,
                matches!(code / 1000, 1 | 3),
                matches!(code / 1000, 2 | 3),
            )
        } else {
            (code & 0x7fff_ffff, true, false) // 2.5D
        };
        if !(1..=7).contains(&base) || flat && code / 1000 > 3 {
            return Err(Unsupported(format!("WKB geometry type {code}")));
        }
        Ok(Header { little, base, z, m })
    }

    fn geometry(&mut self, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        let h = self.header()?;
        let name = [
            "Point",
            "LineString",
            "Polygon",
            "MultiPoint",
            "MultiLineString",
            "MultiPolygon",
            "GeometryCollection",
        ][h.base as usize - 1];
        out.extend_from_slice(b"{ \"type\": \"");
        out.extend_from_slice(name.as_bytes());
        if h.base == 7 {
            out.extend_from_slice(b"\", \"geometries\": [ ");
            let n = self.u32(h.little)?;
            for i in 0..n {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                self.geometry(out)?;
            }
            out.extend_from_slice(if n == 0 { b"]" } else { b" ]" });
        } else {
            out.extend_from_slice(b"\", \"coordinates\": ");
            self.coordinates(&h, out)?;
        }
        out.extend_from_slice(b" }");
        Ok(())
    }

    /// The coordinates member of a non-collection geometry whose header was read.
    fn coordinates(&mut self, h: &Header, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        match h.base {
            1 => self.point(h, out, true),
            2 => self.points(h, out),
            3 => self.rings(h, out),
            _ => {
                let parts = self.u32(h.little)?;
                self.list(out, parts, |me, out| {
                    let part = me.header()?;
                    if part.base != h.base - 3 {
                        return Err(Unsupported("a multi geometry of mixed parts".into()));
                    }
                    me.coordinates(&part, out)
                })
            }
        }
    }

    /// `[ a, b ]`, each item written by `item`; `[ ]` when empty, as GDAL writes.
    fn list(
        &mut self,
        out: &mut Vec<u8>,
        n: u32,
        mut item: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        out.extend_from_slice(b"[ ");
        for i in 0..n {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            item(self, out)?;
        }
        out.extend_from_slice(if n == 0 { b"]" } else { b" ]" });
        Ok(())
    }

    /// One position; an empty point (NaN coordinates) is `[ ]` on its own.
    fn point(&mut self, h: &Header, out: &mut Vec<u8>, alone: bool) -> Result<(), Unsupported> {
        let x = self.f64(h.little)?;
        let y = self.f64(h.little)?;
        let z = if h.z { Some(self.f64(h.little)?) } else { None };
        if h.m {
            self.f64(h.little)?;
        }
        if alone && x.is_nan() && y.is_nan() {
            out.extend_from_slice(b"[ ]");
            return Ok(());
        }
        out.extend_from_slice(b"[ ");
        number(x, out);
        out.extend_from_slice(b", ");
        number(y, out);
        if let Some(z) = z {
            out.extend_from_slice(b", ");
            number(z, out);
        }
        out.extend_from_slice(b" ]");
        Ok(())
    }

    fn points(&mut self, h: &Header, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        let n = self.u32(h.little)?;
        self.list(out, n, |me, out| me.point(h, out, false))
    }

    fn rings(&mut self, h: &Header, out: &mut Vec<u8>) -> Result<(), Unsupported> {
        let n = self.u32(h.little)?;
        self.list(out, n, |me, out| me.points(h, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_header(code: u32) -> Vec<u8> {
        let mut v = vec![1];
        v.extend_from_slice(&code.to_le_bytes());
        v
    }

    fn coords(v: &mut Vec<u8>, values: &[f64]) {
        for x in values {
            v.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn as_json(wkb: &[u8]) -> String {
        let mut out = Vec::new();
        geometry(wkb, &mut out).expect("supported");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn points_keep_z_drop_m_and_write_shortest_exact_numbers() {
        let mut p = le_header(1);
        coords(&mut p, &[1.0, 0.1]);
        assert_eq!(
            as_json(&p),
            r#"{ "type": "Point", "coordinates": [ 1.0, 0.1 ] }"#
        );
        let mut pz = le_header(1001);
        coords(&mut pz, &[79.85258611834914, -2.5, 3.0]);
        assert_eq!(
            as_json(&pz),
            r#"{ "type": "Point", "coordinates": [ 79.85258611834914, -2.5, 3.0 ] }"#
        );
        let mut pm = le_header(2001);
        coords(&mut pm, &[1.0, 2.0, 9.0]);
        assert_eq!(
            as_json(&pm),
            r#"{ "type": "Point", "coordinates": [ 1.0, 2.0 ] }"#
        );
        let mut p25d = le_header(0x8000_0001);
        coords(&mut p25d, &[1.0, 2.0, 3.0]);
        assert!(as_json(&p25d).ends_with("[ 1.0, 2.0, 3.0 ] }"));
        let mut empty = le_header(1);
        coords(&mut empty, &[f64::NAN, f64::NAN]);
        assert_eq!(
            as_json(&empty),
            r#"{ "type": "Point", "coordinates": [ ] }"#
        );
    }

    #[test]
    fn big_endian_wkb_reads_the_same() {
        let mut be = vec![0];
        be.extend_from_slice(&2u32.to_be_bytes());
        be.extend_from_slice(&2u32.to_be_bytes());
        for x in [1.0f64, 2.0, 3.0, 4.5] {
            be.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(
            as_json(&be),
            r#"{ "type": "LineString", "coordinates": [ [ 1.0, 2.0 ], [ 3.0, 4.5 ] ] }"#
        );
    }

    #[test]
    fn polygons_multis_and_collections_nest_as_geojson() {
        let ring = |v: &mut Vec<u8>| {
            v.extend_from_slice(&4u32.to_le_bytes());
            coords(v, &[0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
        };
        let mut polygon = le_header(3);
        polygon.extend_from_slice(&1u32.to_le_bytes());
        ring(&mut polygon);
        let mut multi = le_header(6);
        multi.extend_from_slice(&2u32.to_le_bytes());
        multi.extend_from_slice(&polygon);
        multi.extend_from_slice(&polygon);
        let one = "[ [ [ 0.0, 0.0 ], [ 1.0, 0.0 ], [ 1.0, 1.0 ], [ 0.0, 0.0 ] ] ]";
        assert_eq!(
            as_json(&multi),
            format!(r#"{{ "type": "MultiPolygon", "coordinates": [ {one}, {one} ] }}"#)
        );
        let mut collection = le_header(7);
        collection.extend_from_slice(&2u32.to_le_bytes());
        collection.extend_from_slice(&polygon);
        let mut point = le_header(1);
        coords(&mut point, &[5.0, 6.0]);
        collection.extend_from_slice(&point);
        assert_eq!(
            as_json(&collection),
            format!(
                r#"{{ "type": "GeometryCollection", "geometries": [ {{ "type": "Polygon", "coordinates": {one} }}, {{ "type": "Point", "coordinates": [ 5.0, 6.0 ] }} ] }}"#
            )
        );
        let mut empty = le_header(3);
        empty.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            as_json(&empty),
            r#"{ "type": "Polygon", "coordinates": [ ] }"#
        );
    }

    #[test]
    fn curves_and_broken_wkb_are_left_to_gdal() {
        let mut out = Vec::new();
        let mut circular = le_header(8);
        circular.extend_from_slice(&0u32.to_le_bytes());
        assert!(geometry(&circular, &mut out).is_err());
        let mut truncated = le_header(2);
        truncated.extend_from_slice(&3u32.to_le_bytes());
        coords(&mut truncated, &[1.0, 2.0]);
        assert_eq!(
            geometry(&truncated, &mut out),
            Err(Unsupported("truncated WKB".into()))
        );
        let mut mixed = le_header(6);
        mixed.extend_from_slice(&1u32.to_le_bytes());
        mixed.extend_from_slice(&le_header(1));
        assert!(geometry(&mixed, &mut out).is_err());
        assert!(geometry(&[7, 1, 0, 0, 0], &mut out).is_err());
    }
}
