// Where a result may lead: an item's `url` field (shop data, untrusted) becomes a link only when it
// is an http(s) URL, or a relative one (resolved against the catalog bundle's folder, which may
// differ from the page's); javascript:, data:, blob:, mailto: and the rest are shown as text.

/** The fields a result shows, with their labels, in this order. */
export const FIELD_LABELS = { price: 'Price', sku: 'SKU' };

/** The absolute http(s) URL an item's `url` names, or null. */
export function itemLink(value, baseUrl) {
  if (typeof value !== 'string' || value.trim() === '') return null;
  let url;
  try { url = new URL(value.trim(), baseUrl); } catch { return null; }
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
}
