package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// tableWait bounds how long CreateTables waits for a new table to become active.
const tableWait = 5 * time.Minute

// CreateTables creates the orders and events tables with their indexes (on-demand capacity) and
// turns on the events' TTL. Tables that exist are left as they are, so it can run at every start
// of a test or an emulator; in AWS the Terraform in infra/ creates the same shape.
func CreateTables(ctx context.Context, client *dynamodb.Client, t Tables) error {
	all := types.Projection{ProjectionType: types.ProjectionTypeAll}
	specs := []*dynamodb.CreateTableInput{
		{
			TableName:   aws.String(t.Orders),
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(attrRunID), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrDueShard), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrDueAt), AttributeType: types.ScalarAttributeTypeN},
				{AttributeName: aws.String(attrActiveShard), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrRunsShard), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrCreatedAt), AttributeType: types.ScalarAttributeTypeN},
			},
			KeySchema: keySchema(attrRunID, attrSK),
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
				{IndexName: aws.String(IndexDue), KeySchema: keySchema(attrDueShard, attrDueAt), Projection: &all},
				{IndexName: aws.String(IndexActive), KeySchema: keySchema(attrActiveShard, attrCreatedAt), Projection: &all},
				{IndexName: aws.String(IndexRuns), KeySchema: keySchema(attrRunsShard, attrCreatedAt), Projection: &types.Projection{
					ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: RunsIndexAttributes}},
			},
		},
		{
			TableName:   aws.String(t.Events),
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(attrTraceID), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrOrderName), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(attrEpoch), AttributeType: types.ScalarAttributeTypeN},
			},
			KeySchema: keySchema(attrTraceID, attrSK),
			GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
				{IndexName: aws.String(IndexEventsByOrder), KeySchema: keySchema(attrOrderName, attrEpoch), Projection: &all},
			},
		},
	}
	for _, spec := range specs {
		name := aws.ToString(spec.TableName)
		_, err := client.CreateTable(ctx, spec)
		var exists *types.ResourceInUseException
		if err != nil && !errors.As(err, &exists) {
			return fmt.Errorf("create table %s: %w", name, err)
		}
		err = dynamodb.NewTableExistsWaiter(client).Wait(ctx, &dynamodb.DescribeTableInput{TableName: spec.TableName}, tableWait)
		if err != nil {
			return fmt.Errorf("wait for table %s: %w", name, err)
		}
	}

	// Ended orders, reported runs and events carry expires_at: both tables drop them by TTL.
	for _, name := range []string{t.Orders, t.Events} {
		ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("describe ttl of %s: %w", name, err)
		}
		if d := ttl.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == attrExpiresAt &&
			(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
			continue
		}
		_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName: aws.String(name),
			TimeToLiveSpecification: &types.TimeToLiveSpecification{
				AttributeName: aws.String(attrExpiresAt),
				Enabled:       aws.Bool(true),
			},
		})
		if err != nil {
			return fmt.Errorf("enable ttl on %s: %w", name, err)
		}
	}
	return nil
}

func keySchema(hash, rng string) []types.KeySchemaElement {
	return []types.KeySchemaElement{
		{AttributeName: aws.String(hash), KeyType: types.KeyTypeHash},
		{AttributeName: aws.String(rng), KeyType: types.KeyTypeRange},
	}
}
