package dynamostore

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/iac-ci/iac-ci/store"
)

// failure is what a failed DynamoDB call means to the store.
type failure struct {
	// conditionFailed: a condition was false and nothing was written. It is store.ErrConflict,
	// or store.ErrNotFound when the item did not exist.
	conditionFailed bool
	// failedItem is the position, in a transaction, of the item whose condition failed.
	failedItem int
	// old is that item as it was, when the request asked for it (ALL_OLD); empty when the item
	// did not exist.
	old map[string]types.AttributeValue
	// retry: the write clashed with a transaction in flight on the same item and its condition
	// was never evaluated, so sending it again is safe.
	retry bool
}

// classify is the one place where the adapter reads DynamoDB's errors.
func classify(err error) failure {
	var (
		checkFailed *types.ConditionalCheckFailedException
		canceled    *types.TransactionCanceledException
		clash       *types.TransactionConflictException
	)
	switch {
	case errors.As(err, &checkFailed):
		return failure{conditionFailed: true, old: checkFailed.Item}
	case errors.As(err, &canceled):
		var f failure
		for i, r := range canceled.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				if !f.conditionFailed {
					f.conditionFailed, f.failedItem, f.old = true, i, r.Item
				}
			case "TransactionConflict":
				f.retry = true
			}
		}
		f.retry = f.retry && !f.conditionFailed
		return f
	case errors.As(err, &clash):
		return failure{retry: true}
	}
	return failure{}
}

// storeError wraps err for op, as store.ErrConflict when a condition failed.
func storeError(op string, err error) error {
	if classify(err).conditionFailed {
		return fmt.Errorf("%s: %w", op, store.ErrConflict)
	}
	return fmt.Errorf("%s: %w", op, err)
}
