//! `stack-depth <objdump.txt> <stack-sizes.txt> <entry-prefix> [--callback <function>]...`
//!
//! The worst-case stack, in octets, of every function of a linked image
//! whose name starts with `<entry-prefix>` (the C API's entry points), by
//! static analysis:
//!
//! - each function's own frame is the size LLVM recorded in `.stack_sizes`
//!   (`-Z emit-stack-sizes`; `llvm-readobj --stack-sizes` prints them). A
//!   function LLVM did not compile with that option (the `mem*` routines of
//!   compiler-builtins, C code) gets the frame its prologue sets up: the
//!   registers `push`ed or `vpush`ed and the `sub sp` (Arm), the `addi sp`
//!   (RISC-V); it is marked as such in the report;
//! - the call graph comes from the disassembly (`llvm-objdump -d
//!   --no-show-raw-insn`): every direct call (`bl`, `blx <address>`, `jal`,
//!   `call`) is an edge, and so is every branch to another function (a tail
//!   call, which runs on the frame its caller gave up);
//! - the depth of a function is the largest of its frame plus the depth of
//!   anything it calls, and of the depth of anything it tail-calls.
//!
//! The analysis is complete only if the graph is: an indirect call or jump
//! (`blx r3`, `bx r3` other than a return, a load into `pc`, `jalr` through
//! anything but the return address) that a reachable function makes could
//! reach code the graph does not see, and recursion has no static bound.
//! Either makes the program fail, naming the function. Otherwise it prints
//! one line per entry point (its depth and the deepest chain) and, last,
//! `stack: <octets>`, the largest.
//!
//! One exception, named on the command line: `--callback <function>` lets
//! that function make indirect *calls* (`blx r3`, `jalr a5`; never jumps),
//! which are the caller's own code called back (the C API's random source).
//! Like the caller's own frame, the callee's frame is not in the figures;
//! a line per entry point that reaches the call says how deep the stack is
//! when it is made (`callback: <entry> <octets> (<function>)`), so the
//! caller adds its own function's stack to that.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

/// One function of the disassembly.
struct Function {
    name: String,
    /// Own frame, and whether it came from `.stack_sizes`.
    frame: u64,
    from_llvm: bool,
    calls: Vec<u64>,
    tail_calls: Vec<u64>,
    /// Indirect calls or jumps: (address, instruction).
    indirect: Vec<(u64, String)>,
    /// Indirect calls (linked): (address, instruction). Problems unless the
    /// function is a named callback site.
    indirect_calls: Vec<(u64, String)>,
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// `Functions: [name]` / `Size: 0x10` pairs of `llvm-readobj --stack-sizes`.
fn stack_sizes(text: &str) -> HashMap<String, u64> {
    let mut sizes = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(list) = line
            .strip_prefix("Functions: [")
            .and_then(|l| l.strip_suffix(']'))
        {
            // Demangled names hold ", " themselves (`CtrCore<_, _>`); an
            // entry names one function but for folded aliases, so the whole
            // list is tried as one name, then its pieces.
            names = std::iter::once(list)
                .chain(list.split(", "))
                .map(str::to_owned)
                .collect();
        } else if let Some(size) = line.strip_prefix("Size: ").and_then(parse_hex) {
            for n in names.drain(..) {
                sizes.insert(n, size);
            }
        }
    }
    sizes
}

/// The registers of a `{r4, r5, lr}` or `{d8-d11}` list.
fn register_count(list: &str) -> u64 {
    let inner = list.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => {
                let n = |s: &str| {
                    s.trim_start_matches(|c: char| c.is_alphabetic())
                        .parse::<u64>()
                };
                match (n(a), n(b)) {
                    (Ok(a), Ok(b)) if b >= a => b - a + 1,
                    _ => 1,
                }
            }
            None => 1,
        })
        .sum()
}

/// The immediate of `#0x10` or `#16`.
fn immediate(s: &str) -> Option<u64> {
    let s = s.trim().trim_start_matches('#');
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The frame a prologue instruction adds, if it is one.
fn prologue_bytes(mnemonic: &str, operands: &str) -> Option<u64> {
    let m = mnemonic.trim_end_matches(".w");
    match m {
        "push" | "stmdb" if operands.contains('{') => {
            let list = &operands[operands.find('{')?..];
            Some(4 * register_count(list))
        }
        "vpush" => Some(8 * register_count(operands)),
        "sub" | "subw" => {
            // sub sp, #16 / sub.w sp, sp, #16 / subw sp, sp, #16
            let parts: Vec<&str> = operands.split(',').map(str::trim).collect();
            if parts.first() == Some(&"sp")
                && parts
                    .iter()
                    .skip(1)
                    .all(|p| *p == "sp" || p.starts_with('#'))
            {
                parts.last().and_then(|p| immediate(p))
            } else {
                None
            }
        }
        "addi" | "c.addi16sp" | "c.addi" => {
            // addi sp, sp, -32
            let parts: Vec<&str> = operands.split(',').map(str::trim).collect();
            match parts.as_slice() {
                ["sp", "sp", n] | ["sp", n] => n.strip_prefix('-').and_then(|v| v.parse().ok()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Where a branch goes: an absolute address (`bl 0x1c8a <foo>`), or, for
/// the second half of a RISC-V `auipc`/`jalr` pair, only the symbol the
/// disassembler resolved (`jalr -0x164(ra) <foo>`).
#[derive(Clone)]
enum Target {
    Address(u64),
    Symbol(String, u64),
}

/// The symbol of an operand such as `0x70a(ra) <foo+0x1a>` (the name may
/// hold `<` and `>` itself: `<<T>::f>`).
fn symbol(operands: &str) -> Option<Target> {
    let inner = operands.split_once(" <")?.1.trim_end().strip_suffix('>')?;
    Some(match inner.rsplit_once('+') {
        Some((name, off)) if off.starts_with("0x") => {
            Target::Symbol(name.to_owned(), parse_hex(off)?)
        }
        _ => Target::Symbol(inner.to_owned(), 0),
    })
}

/// The target of a branch whose operands end with an address, such as
/// `0x1c8a <foo>`, `r0, 0x1c8a <foo>` or `t2, a4, 0x18ec0 <foo+0x180>`.
fn target(operands: &str) -> Option<Target> {
    let before_symbol = operands.split(" <").next()?;
    let last = before_symbol
        .split([',', ' '])
        .map(str::trim)
        .rfind(|t| !t.is_empty())?;
    last.starts_with("0x")
        .then(|| parse_hex(last))
        .flatten()
        .map(Target::Address)
}

/// What one instruction does to the call graph.
enum Flow {
    Call(Target),
    Jump(Target),
    /// A call through a register: it returns here.
    IndirectCall,
    Indirect,
    Other,
}

fn classify(mnemonic: &str, operands: &str) -> Flow {
    let m = mnemonic.trim_end_matches(".w").trim_end_matches(".n");
    let first = operands.split(',').next().map_or("", str::trim);
    // Arm (Thumb).
    if m == "bl" || m == "blx" {
        return target(operands).map_or(Flow::IndirectCall, Flow::Call);
    }
    if m == "bx" {
        return if first == "lr" {
            Flow::Other
        } else {
            Flow::Indirect
        };
    }
    let cond = [
        "", "eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt",
        "gt", "le", "al",
    ];
    if let Some(c) = m.strip_prefix('b')
        && cond.contains(&c)
    {
        return target(operands).map_or(Flow::Indirect, Flow::Jump);
    }
    if m == "cbz" || m == "cbnz" {
        return target(operands).map_or(Flow::Other, Flow::Jump);
    }
    if m == "pop" || m.starts_with("ldm") {
        // Restoring pc from the stack is a return.
        return Flow::Other;
    }
    if m == "tbb" || m == "tbh" {
        // A table of branches inside the function, after the instruction.
        return Flow::Other;
    }
    if first == "pc" {
        // Anything else that writes pc (`mov pc, r3`, `add pc, r3`,
        // `ldr pc, [r0]`): a jump the graph cannot follow.
        return Flow::Indirect;
    }
    // RISC-V.
    let linked = |ops: &str| !ops.trim_start().starts_with("zero");
    match m {
        "jal" | "c.jal" | "call" => {
            let ops = operands.trim_start();
            let link = match ops.split_once(',') {
                Some((rd, _)) if !rd.trim().starts_with("0x") => linked(rd),
                _ => true,
            };
            return match target(ops) {
                Some(t) if link => Flow::Call(t),
                Some(t) => Flow::Jump(t),
                None => Flow::Indirect,
            };
        }
        "j" | "c.j" | "tail" => return target(operands).map_or(Flow::Indirect, Flow::Jump),
        "ret" | "c.ret" => return Flow::Other,
        "jalr" | "c.jalr" | "jr" | "c.jr" => {
            let ops = operands.trim();
            if ops == "ra" || ops == "zero, 0(ra)" || ops == "zero, ra, 0" {
                return Flow::Other;
            }
            // `jalr off(ra) <foo>` / `jr off(t1) <foo>`: the second half of
            // an auipc/jalr pair the disassembler resolved; `jalr` links,
            // `jr` does not (a tail call).
            // `jalr a5` (`jalr ra, 0(a5)`) links: a call through a
            // register; `jr a5` and an explicit `jalr zero, ...` do not.
            let links = m.ends_with("jalr") && linked(ops);
            return match symbol(ops) {
                Some(t) if m.ends_with("jalr") => Flow::Call(t),
                Some(t) => Flow::Jump(t),
                None if links => Flow::IndirectCall,
                None => Flow::Indirect,
            };
        }
        "beq" | "bne" | "blt" | "bge" | "bltu" | "bgeu" | "beqz" | "bnez" | "blez" | "bgez"
        | "bltz" | "bgtz" | "c.beqz" | "c.bnez" => {
            return target(operands).map_or(Flow::Other, Flow::Jump);
        }
        _ => {}
    }
    Flow::Other
}

fn parse_disassembly(text: &str, sizes: &HashMap<String, u64>) -> BTreeMap<u64, Function> {
    let mut functions = BTreeMap::new();
    // (start, function, instructions seen, prologue still open)
    let mut current: Option<(u64, Function, u32, bool)> = None;
    let mut flows: Vec<(u64, u64, Flow, String)> = Vec::new();
    for line in text.lines() {
        if let Some(header) = line.strip_suffix(">:")
            && let Some((addr, name)) = header.split_once(" <")
            && let Some(addr) = parse_hex(addr.trim())
        {
            if let Some((start, f, _, _)) = current.take() {
                functions.insert(start, f);
            }
            let frame = sizes.get(name).copied();
            current = Some((
                addr,
                Function {
                    name: name.to_owned(),
                    frame: frame.unwrap_or(0),
                    from_llvm: frame.is_some(),
                    calls: Vec::new(),
                    tail_calls: Vec::new(),
                    indirect: Vec::new(),
                    indirect_calls: Vec::new(),
                },
                0,
                frame.is_none(),
            ));
            continue;
        }
        let Some((start, f, seen, prologue)) = current.as_mut() else {
            continue;
        };
        let Some((addr, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Some(addr) = parse_hex(addr) else {
            continue;
        };
        let rest = rest.trim();
        let (mnemonic, operands) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let operands = operands.split(" @ ").next().unwrap_or("").trim();
        if mnemonic.starts_with('.') || mnemonic.is_empty() {
            continue;
        }
        *seen += 1;
        if *prologue {
            match prologue_bytes(mnemonic, operands) {
                Some(n) => f.frame += n,
                // The prologue ends at the first other instruction, after
                // a frame-pointer set-up at most.
                None if *seen > 2 && f.frame > 0 => *prologue = false,
                None if *seen > 6 => *prologue = false,
                None => {}
            }
        }
        let flow = classify(mnemonic, operands);
        flows.push((*start, addr, flow, rest.to_owned()));
    }
    if let Some((start, f, _, _)) = current.take() {
        functions.insert(start, f);
    }
    // Edges, now that every function's extent is known.
    let starts: Vec<u64> = functions.keys().copied().collect();
    let by_name: HashMap<String, u64> = functions
        .iter()
        .map(|(a, f)| (f.name.clone(), *a))
        .collect();
    let owner = |t: &Target| {
        let a = match t {
            Target::Address(a) => *a,
            Target::Symbol(name, off) => by_name.get(name)? + off,
        };
        match starts.binary_search(&a) {
            Ok(i) => Some(starts[i]),
            Err(0) => None,
            Err(i) => Some(starts[i - 1]),
        }
    };
    for (start, addr, flow, text) in flows {
        let Some(f) = functions.get_mut(&start) else {
            continue;
        };
        match flow {
            Flow::Call(t) => match owner(&t) {
                Some(o) => f.calls.push(o),
                None => f
                    .indirect
                    .push((addr, format!("{text} (no such function)"))),
            },
            Flow::Jump(t) => match owner(&t) {
                Some(o) if o != start => f.tail_calls.push(o),
                _ => {}
            },
            Flow::IndirectCall => f.indirect_calls.push((addr, text)),
            Flow::Indirect => f.indirect.push((addr, text)),
            Flow::Other => {}
        }
    }
    for f in functions.values_mut() {
        f.calls.sort_unstable();
        f.calls.dedup();
        f.tail_calls.sort_unstable();
        f.tail_calls.dedup();
    }
    functions
}

/// Depth of each function and the chain that gives it, or the problem that
/// leaves it unbounded.
struct Analysis<'a> {
    functions: &'a BTreeMap<u64, Function>,
    /// Functions whose indirect calls are the caller's code called back.
    callbacks: &'a [String],
    depth: HashMap<u64, (u64, Vec<u64>)>,
    on_path: Vec<u64>,
    problems: Vec<String>,
}

impl Analysis<'_> {
    fn visit(&mut self, at: u64) -> (u64, Vec<u64>) {
        if let Some(d) = self.depth.get(&at) {
            return d.clone();
        }
        let Some(f) = self.functions.get(&at) else {
            self.problems
                .push(format!("call to {at:#x}, which is no function"));
            return (0, Vec::new());
        };
        if self.on_path.contains(&at) {
            self.problems
                .push(format!("recursion through {} (no static bound)", f.name));
            return (0, Vec::new());
        }
        let called_back = self.callbacks.contains(&f.name);
        for (addr, text) in f
            .indirect
            .iter()
            .chain(f.indirect_calls.iter().filter(|_| !called_back))
        {
            self.problems.push(format!(
                "indirect call or jump in {} at {addr:#x}: {text}",
                f.name
            ));
        }
        self.on_path.push(at);
        let mut best = (f.frame, vec![at]);
        for &c in &f.calls {
            let (d, mut chain) = self.visit(c);
            if f.frame + d > best.0 {
                chain.insert(0, at);
                best = (f.frame + d, chain);
            }
        }
        for &c in &f.tail_calls {
            let (d, mut chain) = self.visit(c);
            if d > best.0 {
                chain.insert(0, at);
                best = (d, chain);
            }
        }
        self.on_path.pop();
        self.depth.insert(at, best.clone());
        best
    }

    /// How deep the stack is, at most, when a callback site reachable from
    /// `at` calls back (its own frame included), and which site; `None`
    /// when none is reachable. Run after [`Analysis::visit`] found no
    /// recursion.
    fn callback_depth(&self, at: u64, seen: &mut Vec<u64>) -> Option<(u64, String)> {
        let f = self.functions.get(&at)?;
        if seen.contains(&at) {
            return None;
        }
        seen.push(at);
        let mut best = (self.callbacks.contains(&f.name) && !f.indirect_calls.is_empty())
            .then(|| (f.frame, f.name.clone()));
        let deeper = |best: &mut Option<(u64, String)>, d: Option<(u64, String)>, add: u64| {
            if let Some((d, site)) = d
                && best.as_ref().is_none_or(|b| d + add > b.0)
            {
                *best = Some((d + add, site));
            }
        };
        for &c in &f.calls {
            let d = self.callback_depth(c, seen);
            deeper(&mut best, d, f.frame);
        }
        for &c in &f.tail_calls {
            let d = self.callback_depth(c, seen);
            deeper(&mut best, d, 0);
        }
        seen.pop();
        best
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: stack-depth <objdump.txt> <stack-sizes.txt> <entry-prefix> \
                 [--callback <function>]...";
    let (Some([objdump, sizes, prefix]), rest) = (args.get(..3), args.get(3..).unwrap_or(&[]))
    else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let mut callbacks = Vec::new();
    for pair in rest.chunks(2) {
        match pair {
            [flag, name] if flag == "--callback" => callbacks.push(name.clone()),
            _ => {
                eprintln!("{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let (objdump, sizes) = match (read(objdump), read(sizes)) {
        (Ok(o), Ok(s)) => (o, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("stack-depth: {e}");
            return ExitCode::from(2);
        }
    };
    let sizes = stack_sizes(&sizes);
    let functions = parse_disassembly(&objdump, &sizes);
    let entries: Vec<u64> = functions
        .iter()
        .filter(|(_, f)| f.name.starts_with(prefix.as_str()) && !f.name.contains("::"))
        .map(|(a, _)| *a)
        .collect();
    if entries.is_empty() || sizes.is_empty() {
        eprintln!("stack-depth: no entry point named {prefix}* or no stack sizes");
        return ExitCode::from(2);
    }
    let mut analysis = Analysis {
        functions: &functions,
        callbacks: &callbacks,
        depth: HashMap::new(),
        on_path: Vec::new(),
        problems: Vec::new(),
    };
    let mut worst = 0;
    let mut rows = Vec::new();
    for &e in &entries {
        let (depth, chain) = analysis.visit(e);
        worst = worst.max(depth);
        let chain: Vec<String> = chain
            .iter()
            .map(|a| {
                let f = &functions[a];
                let mark = if f.from_llvm { "" } else { "*" };
                format!("{} ({}{mark})", f.name, f.frame)
            })
            .collect();
        rows.push((depth, functions[&e].name.clone(), chain.join(" > ")));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (depth, name, chain) in &rows {
        println!("{depth:>6}  {name}: {chain}");
    }
    let reachable = analysis.depth.len();
    let from_prologue: Vec<&str> = analysis
        .depth
        .keys()
        .filter(|a| !functions[a].from_llvm)
        .map(|a| functions[a].name.as_str())
        .collect();
    println!(
        "{reachable} functions reachable from {} entry points; frames from .stack_sizes except \
         (*, from the prologue): {}",
        entries.len(),
        if from_prologue.is_empty() {
            "none".to_owned()
        } else {
            from_prologue.join(", ")
        }
    );
    analysis.problems.sort();
    analysis.problems.dedup();
    if !analysis.problems.is_empty() {
        for p in &analysis.problems {
            eprintln!("stack-depth: {p}");
        }
        eprintln!("stack-depth: the call graph is incomplete; no bound is given");
        return ExitCode::from(1);
    }
    let mut called_back = Vec::new();
    for &e in &entries {
        if let Some((depth, site)) = analysis.callback_depth(e, &mut Vec::new()) {
            called_back.push(format!("callback: {} {depth} ({site})", functions[&e].name));
        }
    }
    if called_back.is_empty() {
        println!("indirect calls or jumps in reachable code: none; recursion: none");
    } else {
        println!(
            "indirect calls or jumps in reachable code: none but the callbacks below (the \
             caller's function, its frame not included); recursion: none"
        );
        for line in &called_back {
            println!("{line}");
        }
    }
    println!("stack: {worst}");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyse(objdump: &str, sizes: &str) -> (Vec<(String, u64)>, Vec<String>) {
        let (depths, problems, _) = analyse_with(objdump, sizes, &[]);
        (depths, problems)
    }

    /// Depths, problems, and the depth at which each entry point calls back.
    #[allow(clippy::type_complexity)]
    fn analyse_with(
        objdump: &str,
        sizes: &str,
        callbacks: &[String],
    ) -> (Vec<(String, u64)>, Vec<String>, Vec<(String, u64)>) {
        let sizes = stack_sizes(sizes);
        let functions = parse_disassembly(objdump, &sizes);
        let mut a = Analysis {
            functions: &functions,
            callbacks,
            depth: HashMap::new(),
            on_path: Vec::new(),
            problems: Vec::new(),
        };
        let entries: Vec<(u64, String)> = functions
            .iter()
            .filter(|(_, f)| f.name.starts_with("api_"))
            .map(|(addr, f)| (*addr, f.name.clone()))
            .collect();
        let depths = entries
            .iter()
            .map(|(addr, name)| (name.clone(), a.visit(*addr).0))
            .collect();
        let called_back = entries
            .iter()
            .filter_map(|(addr, name)| {
                a.callback_depth(*addr, &mut Vec::new())
                    .map(|(d, _)| (name.clone(), d))
            })
            .collect();
        (depths, a.problems, called_back)
    }

    const SIZES: &str = "
  Entry {
    Functions: [api_a]
    Size: 0x10
  }
  Entry {
    Functions: [<T<u8, u16>>::inner]
    Size: 0x100
  }
  Entry {
    Functions: [leaf]
    Size: 0x8
  }";

    #[test]
    fn arm_calls_add_frames_and_tail_calls_reuse_the_callers() {
        let objdump = "
00000100 <api_a>:
     100:      \tpush\t{r7, lr}
     102:      \tbl\t0x200 <<T<u8, u16>>::inner> @ imm = #0xfa
     106:      \tb.w\t0x300 <leaf> @ imm = #0x1f6
00000200 <<T<u8, u16>>::inner>:
     200:      \tbl\t0x300 <leaf>
     204:      \tbeq\t0x208 <<T<u8, u16>>::inner+0x8>
     208:      \tbx\tlr
00000300 <leaf>:
     300:      \tbx\tlr
00000400 <api_b>:
     400:      \tpush\t{r4, r5, r6, r7, lr}
     402:      \tsub\tsp, #24
     404:      \tbl\t0x500 <memcpy>
00000500 <memcpy>:
     500:      \tpush\t{r4, lr}
     502:      \tpop\t{r4, pc}
";
        let (depths, problems) = analyse(objdump, SIZES);
        assert!(problems.is_empty(), "{problems:?}");
        // api_a: own 16 + inner (256 + leaf 8); its tail call to leaf
        // needs less. api_b has no recorded size: 5 registers pushed and 24
        // octets, then memcpy's 2 registers.
        assert_eq!(
            depths,
            [("api_a".into(), 16 + 256 + 8), ("api_b".into(), 44 + 8)]
        );
    }

    #[test]
    fn indirect_calls_jumps_and_recursion_are_problems() {
        for (insn, what) in [
            ("blx\tr3", "indirect"),
            ("bx\tr2", "indirect"),
            ("add\tpc, r3", "indirect"),
            ("ldr.w\tpc, [r0, #4]", "indirect"),
            ("bl\t0x100 <api_a>", "recursion"),
        ] {
            let objdump =
                format!("00000100 <api_a>:\n     100:      \t{insn}\n     104:      \tbx\tlr\n");
            let (_, problems) = analyse(&objdump, SIZES);
            assert!(
                problems.iter().any(|p| p.contains(what)),
                "{insn}: {problems:?}"
            );
        }
        // A return is none of these.
        let objdump = "00000100 <api_a>:\n     100:      \tpop\t{r7, pc}\n";
        assert!(analyse(objdump, SIZES).1.is_empty());
    }

    #[test]
    fn a_named_callback_site_may_call_through_a_register_and_nothing_else_may() {
        let objdump = "
00000100 <api_a>:
     100:      \tpush\t{r7, lr}
     102:      \tbl\t0x300 <leaf>
     106:      \tbl\t0x200 <<T<u8, u16>>::inner> @ imm = #0xfa
     10a:      \tpop\t{r7, pc}
00000200 <<T<u8, u16>>::inner>:
     200:      \tblx\tr3
     202:      \tbx\tlr
00000300 <leaf>:
     300:      \tbx\tlr
";
        // Not named: a problem, as before.
        assert!(!analyse(objdump, SIZES).1.is_empty());
        let named = ["<T<u8, u16>>::inner".to_owned()];
        let (depths, problems, called_back) = analyse_with(objdump, SIZES, &named);
        assert!(problems.is_empty(), "{problems:?}");
        // The callee's frame is not known: the figure is the library's, and
        // the call is made on top of api_a's 16 and inner's 256 octets.
        assert_eq!(depths, [("api_a".into(), 16 + 256)]);
        assert_eq!(called_back, [("api_a".into(), 16 + 256)]);
        // A jump through a register stays a problem, named or not.
        let jump = objdump.replace("blx\tr3", "bx\tr3");
        assert!(!analyse_with(&jump, SIZES, &named).1.is_empty());
        // RISC-V: `jalr a5` links (a call); `jr a5` does not.
        let riscv = "00000100 <api_a>:\n     100:      \tjalr\ta5\n     104:      \tret\n";
        let (_, problems, called_back) = analyse_with(riscv, SIZES, &["api_a".to_owned()]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(called_back, [("api_a".into(), 16)]);
        let riscv_jump = riscv.replace("jalr", "jr");
        assert!(
            !analyse_with(&riscv_jump, SIZES, &["api_a".to_owned()])
                .1
                .is_empty()
        );
    }

    #[test]
    fn riscv_auipc_jalr_pairs_are_calls_and_jr_through_a_register_is_not() {
        let objdump = "
00000100 <api_a>:
     100:      \taddi\tsp, sp, -32
     104:      \tauipc\tra, 0x0
     108:      \tjalr\t0xfc(ra) <<T<u8, u16>>::inner>
     10c:      \tjr\t0x1f8(t1) <leaf>
00000200 <<T<u8, u16>>::inner>:
     200:      \tbne\ta0, a1, 0x208 <<T<u8, u16>>::inner+0x8>
     204:      \tret
00000300 <leaf>:
     300:      \tret
";
        let (depths, problems) = analyse(objdump, SIZES);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(depths, [("api_a".into(), 16 + 256)]);
        let objdump = "00000100 <api_a>:\n     100:      \tjr\ta3\n";
        assert!(!analyse(objdump, SIZES).1.is_empty());
    }
}
