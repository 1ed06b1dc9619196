"""Which of our modules corresponds to which module of the reference, by name.

Three sources, strongest first:

1. a ``name_map`` the user gives (a dict or a function: our module name -> the reference's);
2. the interop name table of our network (``inception3a.branch_3x3.reduce.conv.weight`` ->
   ``inception3a.branch2.0.conv.weight``): the modules holding the two keys correspond, and so do their parents
   as long as that is consistent (``inception3a.branch_3x3`` -> ``inception3a.branch2``);
3. equal names.

Then, inside two corresponding parents, children left over on both sides in equal number and of the same kinds are
paired in the order they were defined (``branch_pool.pool`` -> ``branch4.0``, the max pool that holds no weights).
After both sides ran, `align_leftovers` pairs what is still unpaired by kind and output shape, in run order (the
pools of BN-Inception, whose reference defines every layer in one flat module).
"""


def parent(name):
    return name.rpartition(".")[0]


def _from_key_table(key_table):
    """{our module: reference module} implied by a {our parameter key: reference key} table, with the parents
    as far up as both sides have them and every module maps one to one."""
    candidates = {}
    for ours, theirs in key_table.items():
        ours, theirs = parent(ours), parent(theirs)
        while True:
            candidates.setdefault(ours, set()).add(theirs)
            if not ours or not theirs:
                break
            ours, theirs = parent(ours), parent(theirs)
    pairs = {ours: next(iter(theirs)) for ours, theirs in candidates.items() if len(theirs) == 1}
    claimed = {}
    for ours, theirs in pairs.items():
        claimed.setdefault(theirs, []).append(ours)
    pairs = {ours: theirs for ours, theirs in pairs.items() if len(claimed[theirs]) == 1}
    return {ours: theirs for ours, theirs in pairs.items() if bool(ours) == bool(theirs)}


def _pair_leftover_children(pairs, ours, theirs):
    """Add pairs for children left unpaired under two paired parents (same count, same kinds, in run order)."""
    taken, todo = set(pairs.values()), list(pairs.items())
    while todo:
        our_parent, their_parent = todo.pop()
        our_free = [n for n in ours if n and parent(n) == our_parent and n not in pairs]
        their_free = [n for n in theirs if n and parent(n) == their_parent and n not in taken]
        kinds_agree = [ours[n] for n in our_free] == [theirs[n] for n in their_free]
        if our_free and kinds_agree:
            new = list(zip(our_free, their_free))
            pairs.update(new)
            taken.update(their_free)
            todo.extend(new)


def align_leftovers(pairs, ours, theirs):
    """Pair modules still unpaired after recording: the longest sequence, in the order they ran, of modules of the
    same kind with outputs of the same shape on both sides (BN-Inception's pools, whose reference defines every
    layer in one flat module). ours, theirs: [(name, kind, output shape)] in run order. Adds to ``pairs``."""
    taken = set(pairs.values())
    mine = [entry for entry in ours if entry[0] not in pairs]
    other = [entry for entry in theirs if entry[0] not in taken]
    same = [[a[1:] == b[1:] and a[2] is not None for b in other] for a in mine]
    # longest common subsequence, filled from the end
    length = [[0] * (len(other) + 1) for _ in range(len(mine) + 1)]
    for i in reversed(range(len(mine))):
        for j in reversed(range(len(other))):
            length[i][j] = (length[i + 1][j + 1] + 1 if same[i][j]
                            else max(length[i + 1][j], length[i][j + 1]))
    i = j = 0
    while i < len(mine) and j < len(other):
        if same[i][j] and length[i][j] == length[i + 1][j + 1] + 1:
            pairs[mine[i][0]] = other[j][0]
            i, j = i + 1, j + 1
        elif length[i + 1][j] >= length[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def pair_modules(ours, theirs, key_table=None, name_map=None):
    """{our module name: reference module name} for the modules that ran on each side.

    ours, theirs: {module name: class name} in the order the modules ran (the root module is ``""``).
    key_table: {our state_dict key: reference key} or None. name_map: a dict or callable, or None.
    """
    if name_map is not None:
        lookup = name_map.get if isinstance(name_map, dict) else name_map
        return {name: lookup(name) for name in ours if lookup(name) in theirs}
    pairs = {name: name for name in ours if name in theirs}
    if key_table:
        implied = {o: t for o, t in _from_key_table(key_table).items() if o in ours and t in theirs}
        taken = set(implied.values())
        pairs = {o: t for o, t in pairs.items() if o not in implied and t not in taken}
        pairs.update(implied)
    _pair_leftover_children(pairs, ours, theirs)
    return pairs
