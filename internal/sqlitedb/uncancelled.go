package sqlitedb

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// uncancelledConnector makes connections that hand the driver contexts without cancellation.
// For every statement run with a context that can end, modernc.org/sqlite starts a goroutine
// and installs a progress handler, to interrupt the statement if the context ends first; the
// embedded adapters' statements take microseconds, and that watch was about a twentieth of a
// 1000-order fan-out's time. What waits still ends with its context: database/sql's wait for
// the one connection, and the rollback database/sql makes of a transaction whose context ends.
// A statement under way runs to its end.
type uncancelledConnector struct{ next driver.Connector }

func (c uncancelledConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.next.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(innerConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods", conn)
	}
	return uncancelledConn{inner}, nil
}

func (c uncancelledConnector) Driver() driver.Driver { return c.next.Driver() }

// innerConn is what database/sql uses of a modernc.org/sqlite connection.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type uncancelledConn struct{ innerConn }

func (c uncancelledConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.innerConn.BeginTx(context.WithoutCancel(ctx), opts)
}

func (c uncancelledConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.innerConn.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	inner, ok := s.(innerStmt)
	if !ok {
		s.Close()
		return nil, fmt.Errorf("sqlite driver statement %T lacks the context methods", s)
	}
	return uncancelledStmt{inner}, nil
}

// Prepare is PrepareContext without a context; database/sql calls only PrepareContext, but a
// driver.Conn must have it, and it must wrap as PrepareContext does.
func (c uncancelledConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c uncancelledConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.innerConn.ExecContext(context.WithoutCancel(ctx), query, args)
}

func (c uncancelledConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.innerConn.QueryContext(context.WithoutCancel(ctx), query, args)
}

// innerStmt is what database/sql uses of a modernc.org/sqlite prepared statement.
type innerStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type uncancelledStmt struct{ innerStmt }

func (s uncancelledStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.innerStmt.ExecContext(context.WithoutCancel(ctx), args)
}

func (s uncancelledStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.innerStmt.QueryContext(context.WithoutCancel(ctx), args)
}
