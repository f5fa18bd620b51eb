/**
 * The names a shared library exports, read from its ELF dynamic symbol table without loading it.
 * `doctor` uses it when librdmacm is present but does not load, to say which rsocket functions
 * are missing (an old or foreign build) or that none is (then the cause lies elsewhere: wrong
 * architecture, FFI not permitted, a dependency missing).
 *
 * Reads ELF64 little-endian (x86_64, aarch64 Linux), the only targets the FFI layer supports.
 *
 * @module
 */
import { readFileSync } from "node:fs";

const SHT_DYNSYM = 11;
const SHN_UNDEF = 0;

/**
 * The defined symbols in `path`'s `.dynsym` (what `nm -D --defined-only` lists, without
 * versions). Throws a RangeError naming the file when it is not ELF64 little-endian or is cut short.
 *
 * @example
 * ```ts
 * dynamicSymbols("/usr/lib/x86_64-linux-gnu/librdmacm.so.1").has("rsocket"); // true
 * ```
 */
export function dynamicSymbols(path: string): Set<string> {
  const bytes = readFileSync(path);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) =>
    new RangeError(`${path}: not a usable ELF64 little-endian file (${why})`);
  if (bytes.length < 64 || dv.getUint32(0) !== 0x7f454c46) throw bad("no ELF magic");
  if (bytes[4] !== 2) throw bad("not 64-bit");
  if (bytes[5] !== 1) throw bad("not little-endian");
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  if (shoff + shnum * shentsize > bytes.length || shentsize < 64) {
    throw bad("section headers out of range");
  }
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      type: dv.getUint32(at + 4, true),
      offset: Number(dv.getBigUint64(at + 24, true)),
      size: Number(dv.getBigUint64(at + 32, true)),
      link: dv.getUint32(at + 40, true),
      entsize: Number(dv.getBigUint64(at + 56, true)),
    };
  };
  const names = new Set<string>();
  const decoder = new TextDecoder();
  for (let i = 0; i < shnum; i++) {
    const sym = section(i);
    if (sym.type !== SHT_DYNSYM) continue;
    if (sym.link >= shnum) throw bad("dynsym links to no string table");
    const str = section(sym.link);
    const entsize = sym.entsize || 24;
    if (sym.offset + sym.size > bytes.length || str.offset + str.size > bytes.length) {
      throw bad("dynsym out of range");
    }
    for (let at = sym.offset; at + 24 <= sym.offset + sym.size; at += entsize) {
      const name = dv.getUint32(at, true);
      const shndx = dv.getUint16(at + 6, true);
      if (name === 0 || shndx === SHN_UNDEF || name >= str.size) continue;
      const start = str.offset + name;
      const end = bytes.indexOf(0, start);
      names.add(decoder.decode(bytes.subarray(start, end === -1 ? str.offset + str.size : end)));
    }
  }
  return names;
}
