// Numbers for people: credits, dollars, tokens, dates.

const MICROS = 1_000_000;

/** Micro-credits as credits, with as many decimals as it takes (up to 6). */
export function credits(micros) {
  if (micros === null || micros === undefined || Number.isNaN(Number(micros))) return '—';
  const value = Number(micros) / MICROS;
  return `${value.toLocaleString('en-US', { maximumFractionDigits: 6 })} credits`;
}

/** A decimal string or number of credits as sent by the API. */
export function creditAmount(value) {
  if (value === null || value === undefined || value === '') return '—';
  const number = Number(value);
  if (Number.isNaN(number)) return String(value);
  return number.toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/** A USD price per 1K tokens; null means the model has no list price. */
export function pricePer1k(value) {
  if (value === null || value === undefined) return '—';
  const number = Number(value);
  if (number === 0) return '$0';
  return `$${number.toLocaleString('en-US', { maximumFractionDigits: 6 })}`;
}

export function usd(value) {
  const number = Number(value);
  if (Number.isNaN(number)) return `$${value}`;
  return number.toLocaleString('en-US', { style: 'currency', currency: 'USD' });
}

export function count(value) {
  if (value === null || value === undefined) return '—';
  return Number(value).toLocaleString('en-US');
}

export function tokens(value) {
  if (value === null || value === undefined) return '—';
  const number = Number(value);
  if (number >= 1_000_000) return `${(number / 1_000_000).toLocaleString('en-US', { maximumFractionDigits: 1 })}M`;
  if (number >= 1_000) return `${(number / 1_000).toLocaleString('en-US', { maximumFractionDigits: 1 })}K`;
  return number.toLocaleString('en-US');
}

/** A timestamp (RFC 3339 string or Unix seconds) as local date and time. */
export function when(value) {
  if (value === null || value === undefined || value === '') return '—';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function percent(value) {
  if (value === null || value === undefined) return '—';
  return `${Math.round(Number(value) * 100)}%`;
}
