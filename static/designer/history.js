// Undo/redo over definition snapshots (JSON strings). Consecutive edits with the same merge key
// (e.g. typing into one field) within `mergeMs` collapse into one step.

export class History {
  constructor({ limit = 300, mergeMs = 1200 } = {}) {
    this.undoStack = [];
    this.redoStack = [];
    this.limit = limit;
    this.mergeMs = mergeMs;
    this.lastKey = null;
    this.lastTime = 0;
  }

  // `before` is the snapshot taken just before a change.
  record(before, mergeKey = null) {
    const now = Date.now();
    const merge = mergeKey && mergeKey === this.lastKey && now - this.lastTime < this.mergeMs;
    this.lastKey = mergeKey;
    this.lastTime = now;
    this.redoStack = [];
    if (merge) return;
    this.undoStack.push(before);
    if (this.undoStack.length > this.limit) this.undoStack.shift();
  }

  undo(current) {
    if (!this.undoStack.length) return null;
    this.lastKey = null;
    this.redoStack.push(current);
    return this.undoStack.pop();
  }

  redo(current) {
    if (!this.redoStack.length) return null;
    this.lastKey = null;
    this.undoStack.push(current);
    return this.redoStack.pop();
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }
}
