// Building DOM nodes without HTML strings: text always goes through textContent, so nothing
// the API returns can turn into markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, props) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (name === 'text') node.textContent = String(value);
    else if (name === 'on') for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else if (name in node && typeof value !== 'string' && name !== 'list') node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** `h('button', {class: 'primary', on: {click}}, 'Save')` */
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  apply(node, props);
  return append(node, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null) continue;
    if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, String(value));
  }
  return append(node, children);
}

/** Replace all children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let idCounter = 0;
/** A page-unique id, for pairing labels with controls. */
export function uid(prefix) {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/** A labelled control: `{wrap, control}`; the label is a real <label for>. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id, text: labelText }), control];
  if (hint) {
    const hintNode = h('span', { class: 'hint', id: uid('hint'), text: hint });
    control.setAttribute('aria-describedby', hintNode.id);
    parts.push(hintNode);
  }
  return h('div', { class: 'field' }, parts);
}

/** A <select> from `[value, label]` pairs. */
export function select(options, selected, props) {
  return h('select', props, options.map(([value, label]) => h('option', { value, selected: value === selected }, label)));
}

/** Loading, empty and error states share one look. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'state loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function empty(text) {
  return h('p', { class: 'state empty' }, text);
}

export function errorBox(error, prefix) {
  const message = error instanceof Error ? error.message : String(error);
  return h('p', { class: 'state error', role: 'alert' }, prefix ? `${prefix}: ${message}` : message);
}

/** A button that disables itself and shows progress while `action` runs. */
export function busy(button, action) {
  return async (...args) => {
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      return await action(...args);
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  };
}
