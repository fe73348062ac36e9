package render

// KeyHint is one key binding as the help bar and help page show it.
type KeyHint struct {
	// Key is the key as shown, e.g. "D" or "?".
	Key string
	// Label is the help bar's word for the action; Help its longer description.
	Label, Help string
	// Dangerous marks an action that changes something (it asks for confirmation).
	Dangerous bool
}

// HelpBar is the one-line list of keys under the nodes view: "<D> detail  <C> cancel init ...",
// the key of a dangerous action in red.
func HelpBar(hints []KeyHint) Line {
	var l Line
	for i, h := range hints {
		c := ColorHeader
		if h.Dangerous {
			c = ColorBad
		}
		sep := ""
		if i > 0 {
			sep = "  "
		}
		l = append(l, Cell{Text: sep}, Cell{Text: "<" + h.Key + ">", Color: c, Bold: true}, Cell{Text: " " + h.Label})
	}
	return l
}

// HelpLines is the help page: every key with its description.
func HelpLines(hints []KeyHint, extra [][2]string) []Line {
	lines := []Line{{{Text: "Keys", Color: ColorHeader, Bold: true}}}
	for _, h := range hints {
		c, note := ColorHeader, ""
		if h.Dangerous {
			c, note = ColorBad, " (asks for confirmation)"
		}
		lines = append(lines, Line{{Text: padRight(h.Key, 8), Color: c, Bold: true}, {Text: h.Help + note}})
	}
	for _, e := range extra {
		lines = append(lines, Line{{Text: padRight(e[0], 8), Color: ColorHeader, Bold: true}, {Text: e[1]}})
	}
	return lines
}

func padRight(s string, n int) string {
	for len([]rune(s)) < n {
		s += " "
	}
	return s
}

// Text is the line's text without colors.
func (l Line) Text() string {
	s := ""
	for _, c := range l {
		s += c.Text
	}
	return s
}
